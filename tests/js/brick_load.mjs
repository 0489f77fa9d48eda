// Brick-socket load generator (benchmarks): N clients in this process, each
// keeping 4 requests of 256 bricks in flight over a grid of n³ bricks, until
// the deadline (or one pass when seconds is 0). Prints {bricks, bytes, seconds}.
// Frames per docs/protocol.md: REQUEST 0x01, BRICKS 0x81, ERROR 0x82, DONE 0x83.
import WebSocket from 'ws'

const [url, clientsArg, magArg, nArg, encodingArg, secondsArg] = process.argv.slice(2)
const clients = Number(clientsArg)
const mag = magArg.split('-').map(Number)
const n = Number(nArg)
const encoding = Number(encodingArg)
const seconds = Number(secondsArg)
const BATCH = 256
const IN_FLIGHT = 4

const bricks = []
for (let z = 0; z < n; z++) for (let y = 0; y < n; y++) for (let x = 0; x < n; x++) bricks.push([x, y, z])

function request (rid, chunk) {
  const buf = Buffer.alloc(16 + 12 * chunk.length)
  buf.writeUInt8(1, 0)
  buf.writeUInt8(encoding, 1)
  buf.writeUInt16LE(chunk.length, 2)
  buf.writeUInt32LE(rid, 4)
  buf.writeUInt16LE(mag[0], 8)
  buf.writeUInt16LE(mag[1], 10)
  buf.writeUInt16LE(mag[2], 12)
  chunk.forEach((b, i) => {
    buf.writeInt32LE(b[0], 16 + 12 * i)
    buf.writeInt32LE(b[1], 20 + 12 * i)
    buf.writeInt32LE(b[2], 24 + 12 * i)
  })
  return buf
}

function client (deadline) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { perMessageDeflate: false, maxPayload: 1 << 26 })
    let got = 0
    let bytes = 0
    let rid = 1
    let position = 0
    let pending = 0
    let stopping = false
    const more = () => {
      while (pending < IN_FLIGHT && !stopping) {
        if (position >= bricks.length) {
          if (!deadline) { stopping = true; break }
          position = 0
        }
        ws.send(request(rid++, bricks.slice(position, position + BATCH)))
        position += BATCH
        pending++
      }
      if (pending === 0) ws.close()
    }
    ws.on('open', more)
    ws.on('message', (data) => {
      bytes += data.length
      const kind = data[0]
      if (kind === 0x81) got += data.readUInt16LE(2)
      else if (kind === 0x83) {
        pending--
        if (deadline && Date.now() > deadline) stopping = true
        more()
      } else if (kind === 0x82) reject(new Error('error frame ' + data.readUInt16LE(2)))
    })
    ws.on('close', () => resolve({ got, bytes }))
    ws.on('error', reject)
  })
}

const started = performance.now()
const deadline = seconds ? Date.now() + seconds * 1000 : 0
const results = await Promise.all(Array.from({ length: clients }, () => client(deadline)))
const elapsed = (performance.now() - started) / 1000
console.log(JSON.stringify({
  bricks: results.reduce((a, r) => a + r.got, 0),
  bytes: results.reduce((a, r) => a + r.bytes, 0),
  seconds: elapsed
}))
