// The brick frames against the golden bytes the Python tests read too.
import { readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import { segmentId } from '../src/segmentation/segment_id'
import { decodeFrame, transferables } from '../src/volume/brick_decode'
import { typedVoxels } from '../src/volume/bricks'
import { segmentColour } from '../src/volume/layers'
import { type Coord, DTYPE_UINT64, packCancel, packRequest, STATUS_STALE, unpack } from '../src/volume/wire'

const golden = JSON.parse(
  readFileSync(new URL('../../tests/golden/brick_frames.json', import.meta.url), 'utf-8'),
)
const bytes = (hex: string) => Uint8Array.from(hex.match(/../g) ?? [], (b) => parseInt(b, 16))
const hex = (data: Uint8Array) => Array.from(data, (b) => b.toString(16).padStart(2, '0')).join('')

describe('brick frames', () => {
  it('packs a request as the golden bytes', () => {
    const a = golden.request.args
    expect(hex(packRequest(a.request_id, a.mag, a.bricks as Coord[], a.encoding, a.mapping))).toBe(
      golden.request.hex,
    )
  })

  it('packs cancels as the golden bytes', () => {
    expect(hex(packCancel(golden.cancel.args.request_id, golden.cancel.args.bricks))).toBe(golden.cancel.hex)
    expect(hex(packCancel(golden.cancel_all.args.request_id))).toBe(golden.cancel_all.hex)
  })

  it('unpacks bricks, done and error frames', () => {
    const frame = unpack(bytes(golden.bricks.hex))
    expect(frame.kind).toBe('bricks')
    if (frame.kind !== 'bricks') return
    expect(frame.records.map((r) => [r.requestId, r.brick, r.status, r.dtype, r.encoding, hex(r.payload)])).toEqual(
      golden.bricks.records.map((r: Record<string, unknown>) => [
        r.request_id, r.brick, r.status, r.dtype, r.encoding, r.payload,
      ]),
    )
    const [rid, sent, missing, cancelled, failed] = golden.done.args
    expect(unpack(bytes(golden.done.hex))).toEqual({
      kind: 'done',
      done: { requestId: rid, sent, missing, cancelled, failed },
    })
    const e = golden.error.args
    expect(unpack(bytes(golden.error.hex))).toEqual({
      kind: 'error',
      error: { code: e.code, requestId: e.request_id, message: e.message },
    })
  })

  it('unpacks a pushed frame (the /volume socket)', () => {
    const g = golden.pushed
    const data = bytes(g.hex)
    // The 16-byte header laid out by hand: type, reserved, count, version, mag x/y/z, reserved.
    const u16 = (n: number) => hex(new Uint8Array(new Uint16Array([n]).buffer))
    const u32 = (n: number) => hex(new Uint8Array(new Uint32Array([n]).buffer))
    expect(hex(data.subarray(0, 16))).toBe(
      '84' + '00' + u16(g.records.length) + u32(g.version) + g.mag.map(u16).join('') + '0000',
    )
    const frame = unpack(data)
    expect(frame.kind).toBe('pushed')
    if (frame.kind !== 'pushed') return
    expect(frame.pushed.version).toBe(g.version)
    expect(frame.pushed.mag).toEqual(g.mag)
    const records = g.records.map((r: Record<string, unknown>) => [r.request_id, r.brick, r.status, r.dtype, r.encoding, r.payload])
    expect(frame.pushed.records.map((r) => [r.requestId, r.brick, r.status, r.dtype, r.encoding, hex(r.payload)])).toEqual(records)
    for (let cut = 1; cut < data.length; cut++) expect(() => unpack(data.subarray(0, cut))).toThrow()
    // As the brick worker hands it to the page: each brick's voxels in a buffer of its own.
    const decoded = decodeFrame(data)
    expect(decoded).toMatchObject({ kind: 'pushed', version: g.version, mag: g.mag })
    if (decoded.kind !== 'pushed') return
    expect(decoded.records.map((r) => [r.brick, r.voxels && hex(new Uint8Array(r.voxels))])).toEqual(
      g.records.map((r: Record<string, unknown>) => [r.brick, r.status === 0 ? r.payload : null]),
    )
  })

  it('unpacks a pushed frame with a stale mark: no voxels, ask again', () => {
    const g = golden.pushed_stale
    const data = bytes(g.hex)
    const frame = unpack(data)
    expect(frame.kind).toBe('pushed')
    if (frame.kind !== 'pushed') return
    expect([frame.pushed.version, frame.pushed.mag]).toEqual([g.version, g.mag])
    expect(frame.pushed.records.map((r) => [r.brick, r.status, r.dtype, r.encoding, hex(r.payload)])).toEqual(
      g.records.map((r: Record<string, unknown>) => [r.brick, r.status, r.dtype, r.encoding, r.payload]),
    )
    const decoded = decodeFrame(data)
    if (decoded.kind !== 'pushed') throw new Error(decoded.kind)
    expect(decoded.records.map((r) => [r.brick, r.status, r.voxels && hex(new Uint8Array(r.voxels))])).toEqual([
      [[4, 5, 6], 0, '0a000000'],
      [[7, 8, 9], STATUS_STALE, null],
    ])
  })

  it('decodes uint64 bricks exactly: ids above 2^53 as bigints, in decimal', () => {
    const g = golden.bricks_uint64
    const decoded = decodeFrame(bytes(g.hex))
    if (decoded.kind !== 'bricks') throw new Error(decoded.kind)
    const [record] = decoded.records
    expect([record.requestId, record.brick, record.dtype]).toEqual([3, [1, 0, 2], DTYPE_UINT64])
    const voxels = typedVoxels(record.dtype, record.voxels)
    expect(voxels).toBeInstanceOf(BigUint64Array)
    const ids = Array.from(voxels as BigUint64Array, segmentId)
    expect(ids.map(String)).toEqual(g.values)
    expect(ids.map((id) => typeof id)).toEqual(['bigint', 'bigint', 'number', 'number'])
    // Coloured consistently: an id has one colour from any dtype, and big ids are told apart.
    expect(segmentColour(ids[2])).toBe(segmentColour(7))
    expect(segmentColour(7n)).toBe(segmentColour(7))
    expect(segmentColour(ids[0])).toBe(segmentColour(2n ** 53n + 1n))
    const big = [ids[0], ids[1], 2n ** 53n + 2n, 2n ** 60n + 12345n].map((id) => segmentColour(id))
    expect(new Set(big).size).toBe(4)
  })

  it('unpacks mapped frames: supervoxel → agglomerate pairs, exact above 2^53', () => {
    const g = golden.mapped
    const data = bytes(g.hex)
    const u32 = (n: number) => hex(new Uint8Array(new Uint32Array([n]).buffer))
    // The 12-byte header laid out by hand: type, flags, reserved, version, pair count.
    expect(hex(data.subarray(0, 12))).toBe('85' + '00' + '0000' + u32(g.version) + u32(g.pairs.length))
    const frame = unpack(data)
    if (frame.kind !== 'mapped') throw new Error(frame.kind)
    expect([frame.mapped.version, frame.mapped.reset]).toEqual([g.version, g.reset])
    const pairs = Array.from(frame.mapped.pairs, segmentId)
    expect(pairs.map(String)).toEqual(g.pairs.flat())
    expect(pairs.map((id) => typeof id)).toEqual(['number', 'number', 'bigint', 'bigint'])
    for (let cut = 1; cut < data.length; cut++) expect(() => unpack(data.subarray(0, cut))).toThrow()
    // From an offset where a BigUint64Array could not view the pairs: copied, the same.
    const shifted = new Uint8Array(data.length + 3)
    shifted.set(data, 3)
    const again = unpack(shifted.subarray(3))
    expect(again.kind === 'mapped' && Array.from(again.mapped.pairs).map(String)).toEqual(g.pairs.flat())
    // As the worker hands it to the page: the pairs' buffer is transferred.
    const decoded = decodeFrame(data)
    if (decoded.kind !== 'mapped') throw new Error(decoded.kind)
    expect(transferables(decoded)).toEqual([decoded.pairs.buffer])
    expect(Array.from(decoded.pairs).map(String)).toEqual(g.pairs.flat())
  })

  it('unpacks a mapped reset: no pairs, look up again', () => {
    const g = golden.mapped_reset
    const frame = unpack(bytes(g.hex))
    if (frame.kind !== 'mapped') throw new Error(frame.kind)
    expect([frame.mapped.version, frame.mapped.reset, frame.mapped.pairs.length]).toEqual([g.version, true, 0])
  })

  it('refuses truncated and unknown frames', () => {
    const whole = bytes(golden.bricks.hex)
    for (let cut = 1; cut < whole.length; cut++) {
      expect(() => unpack(whole.subarray(0, cut))).toThrow()
    }
    expect(() => unpack(new Uint8Array([0x7f]))).toThrow(/unknown frame/)
    expect(() => unpack(new Uint8Array(0))).toThrow()
  })
})
