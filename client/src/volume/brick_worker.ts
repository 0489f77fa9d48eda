// The brick socket of one layer, off the page's main thread: receives and
// decodes frames (./brick_decode.ts: unpack, zstd) and posts each brick's
// voxels to the page, transferred; sends what the page packs.
//
// Why: panning with the segmentation shown spent ~0.9 s of every 3 s on the
// main thread in zstd decoding and copies of the bricks, and frames waited
// behind it (docs/performance.md).
//
// Page → worker: {connect: url} | {send: Uint8Array} | {close: true}
// Worker → page: {open: true} | {closed: true} | Decoded

import { decodeFrame, transferables } from './brick_decode'

let ws: WebSocket | null = null

self.onmessage = (event: MessageEvent) => {
  const message = event.data
  if (message.connect) {
    ws = new WebSocket(message.connect)
    ws.binaryType = 'arraybuffer'
    const socket = ws
    ws.onopen = () => postMessage({ open: true })
    ws.onmessage = (e) => {
      const decoded = decodeFrame(new Uint8Array(e.data as ArrayBuffer))
      postMessage(decoded, { transfer: transferables(decoded) })
    }
    ws.onclose = () => {
      if (ws === socket) ws = null
      postMessage({ closed: true })
    }
  } else if (message.send) {
    if (ws?.readyState === WebSocket.OPEN) ws.send(message.send)
  } else if (message.close) {
    if (ws) ws.onclose = null
    ws?.close()
    ws = null
  }
}
