// What the brick worker does with a frame from the socket: unpack it
// (./wire.ts) and decompress zstd payloads, so the page gets each brick's
// voxels in a buffer of its own, ready to be transferred (not copied) to the
// main thread. Pure: client/test/wire.test.ts checks it on the golden frames.

import { decompress } from 'fzstd'
import { ENCODING_ZSTD, STATUS_OK, unpack } from './wire'

/** A frame as the worker hands it to the page. */
export type Decoded =
  | { kind: 'bricks'; records: DecodedBrick[] }
  | { kind: 'pushed'; version: number; mag: [number, number, number]; records: DecodedBrick[] }
  | { kind: 'mapped'; version: number; reset: boolean; pairs: BigUint64Array }
  | { kind: 'done'; requestId: number }
  | { kind: 'error'; requestId: number; code: number; message: string }
  | { kind: 'bad'; message: string } // not a frame of the protocol

export interface DecodedBrick {
  requestId: number
  brick: [number, number, number]
  /** As on the wire: ok, missing, failed, or (pushed only) stale: ask again. */
  status: number
  dtype: number
  /** The voxels (a buffer of their own), or null: missing, failed, or undecodable. */
  voxels: ArrayBuffer | null
}

export function decodeFrame(data: Uint8Array): Decoded {
  let frame
  try {
    frame = unpack(data)
  } catch (error) {
    return { kind: 'bad', message: String(error) }
  }
  if (frame.kind === 'done') return { kind: 'done', requestId: frame.done.requestId }
  if (frame.kind === 'error') return { kind: 'error', ...frame.error }
  if (frame.kind === 'mapped') return { kind: 'mapped', ...frame.mapped }
  const records = (frame.kind === 'pushed' ? frame.pushed.records : frame.records).map((record): DecodedBrick => {
    let voxels: ArrayBuffer | null = null
    if (record.status === STATUS_OK) {
      try {
        const bytes = record.encoding === ENCODING_ZSTD ? decompress(record.payload) : record.payload.slice()
        voxels =
          bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength
            ? (bytes.buffer as ArrayBuffer)
            : (bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer)
      } catch {
        voxels = null // a payload that does not decompress: shown as a missing tile
      }
    }
    return { requestId: record.requestId, brick: record.brick, status: record.status, dtype: record.dtype, voxels }
  })
  if (frame.kind === 'pushed') return { kind: 'pushed', version: frame.pushed.version, mag: frame.pushed.mag, records }
  return { kind: 'bricks', records }
}

/** Buffers a decoded frame can hand over without copying. */
export function transferables(decoded: Decoded): ArrayBuffer[] {
  if (decoded.kind === 'mapped') return [decoded.pairs.buffer as ArrayBuffer]
  return decoded.kind === 'bricks' || decoded.kind === 'pushed' ? decoded.records.flatMap((r) => (r.voxels ? [r.voxels] : [])) : []
}
