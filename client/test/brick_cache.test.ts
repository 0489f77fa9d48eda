// The page's brick cache (src/volume/brick_cache.ts) and what the brick
// worker makes of frames (src/volume/brick_decode.ts).
import { readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import { BrickCache } from '../src/volume/brick_cache'
import { decodeFrame, transferables } from '../src/volume/brick_decode'

const golden = JSON.parse(
  readFileSync(new URL('../../tests/golden/brick_frames.json', import.meta.url), 'utf-8'),
)
const bytes = (hex: string) => Uint8Array.from(hex.match(/../g) ?? [], (b) => parseInt(b, 16))

describe('brick cache', () => {
  it('keeps bricks under its byte budget, least recently used out', () => {
    const cache = new BrickCache(3 * 1024)
    for (const k of ['a', 'b', 'c']) cache.set(k, new Uint8Array(1024))
    expect(cache.cachedBytes).toBe(3 * 1024)
    cache.get('a') // a is now the most recently used: b goes first
    cache.set('d', new Uint8Array(1024))
    expect([cache.has('a'), cache.has('b'), cache.has('c'), cache.has('d')]).toEqual([true, false, true, true])
    expect(cache.cachedBytes).toBe(3 * 1024)
    cache.set('e', new Uint32Array(512)) // 2 KiB: two more go
    expect(cache.size).toBe(2)
    expect(cache.cachedBytes).toBe(3 * 1024)
  })

  it('tells an empty brick (null) from one not cached (undefined), and replaces without leaking bytes', () => {
    const cache = new BrickCache(1024)
    cache.set('missing', null)
    expect(cache.get('missing')).toBeNull()
    expect(cache.get('never')).toBeUndefined()
    cache.set('x', new Uint8Array(100))
    cache.set('x', new Uint8Array(200))
    expect(cache.cachedBytes).toBe(200)
    cache.clear()
    expect([cache.size, cache.cachedBytes]).toEqual([0, 0])
  })

  it('keeps one brick even when it alone is over the budget', () => {
    const cache = new BrickCache(10)
    cache.set('big', new Uint8Array(100))
    expect(cache.has('big')).toBe(true)
  })
})

describe('frames as the worker decodes them', () => {
  it('gives each brick of the golden frame its voxels in a buffer of its own', () => {
    const decoded = decodeFrame(bytes(golden.bricks.hex))
    expect(decoded.kind).toBe('bricks')
    if (decoded.kind !== 'bricks') return
    const want = golden.bricks.records
    expect(decoded.records.map((r) => [r.requestId, r.brick, r.dtype])).toEqual(
      want.map((r: Record<string, unknown>) => [r.request_id, r.brick, r.dtype]),
    )
    const [ok, missing] = decoded.records
    expect(Buffer.from(ok.voxels as ArrayBuffer).toString('hex')).toBe(want[0].payload)
    expect(ok.voxels?.byteLength).toBe(want[0].payload.length / 2) // not the whole frame's buffer
    expect(missing.voxels).toBeNull()
    expect(transferables(decoded)).toEqual([ok.voxels])
  })

  it('decompresses zstd payloads, and a payload that does not decompress is a missing tile', () => {
    const voxels = new Uint8Array(32 * 32 * 32 * 4).map((_, i) => (i * 7) & 0xff)
    const packed = zstdRaw(voxels)
    const frame = (payload: Uint8Array) => {
      const out = new Uint8Array(4 + 32 + payload.length)
      const view = new DataView(out.buffer)
      out[0] = 0x81
      view.setUint16(2, 1, true)
      view.setUint32(4, 7, true) // request 7
      view.setInt32(8, 1, true)
      view.setInt32(12, 2, true)
      view.setInt32(16, 3, true)
      out[20] = 0 // ok
      out[21] = 3 // uint32
      out[22] = 1 // zstd
      view.setUint16(24, 32, true)
      view.setUint16(26, 32, true)
      view.setUint16(28, 32, true)
      view.setUint32(32, payload.length, true)
      out.set(payload, 36)
      return out
    }
    const good = decodeFrame(frame(packed))
    expect(good.kind === 'bricks' && new Uint8Array(good.records[0].voxels as ArrayBuffer)).toEqual(voxels)
    const bad = decodeFrame(frame(new Uint8Array([1, 2, 3, 4, 5])))
    expect(bad.kind === 'bricks' && bad.records[0].voxels).toBeNull()
    expect(decodeFrame(new Uint8Array([0x99])).kind).toBe('bad')
    expect(decodeFrame(bytes(golden.done.hex))).toEqual({ kind: 'done', requestId: golden.done.args[0] })
  })
})

/** A zstd frame holding `data` as one raw block (fzstd only decompresses; the format is RFC 8878). */
function zstdRaw(data: Uint8Array): Uint8Array {
  const out = new Uint8Array(4 + 1 + 4 + 3 + data.length)
  const view = new DataView(out.buffer)
  view.setUint32(0, 0xfd2fb528, true) // magic
  out[4] = 0xa0 // single segment, a 4-byte content size, no checksum, no dictionary
  view.setUint32(5, data.length, true)
  const header = 1 | (data.length << 3) // last block, raw, its size
  out[9] = header & 0xff
  out[10] = (header >> 8) & 0xff
  out[11] = (header >> 16) & 0xff
  out.set(data, 12)
  return out
}
