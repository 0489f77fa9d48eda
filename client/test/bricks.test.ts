// A layer's bricks on the page (src/volume/bricks.ts) with its worker
// stubbed: PUSHED frames replace cached bricks (a new revision: views upload
// them again) and take the page's strokes they hold off the preview.
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import type { Decoded } from '../src/volume/brick_decode'
import { BrickSource, parseMag, voxelAt } from '../src/volume/bricks'
import { Preview } from '../src/volume/preview'

class FakeWorker {
  static last: FakeWorker
  sent: unknown[] = []
  onmessage: (event: { data: unknown }) => void = () => undefined
  constructor() {
    FakeWorker.last = this
  }
  postMessage(message: unknown): void {
    this.sent.push(message)
  }
  terminate(): void {}
}

const u32 = (value: number) => new Uint32Array(32 ** 3).fill(value).buffer
const u64 = (value: bigint) => new BigUint64Array(32 ** 3).fill(value).buffer

/** The bricks the page asked for in the frames it sent: request id → keys. */
function asked(worker: FakeWorker): Map<number, string[]> {
  const out = new Map<number, string[]>()
  for (const message of worker.sent) {
    const frame = (message as { send?: Uint8Array }).send
    if (!frame || frame[0] !== 0x01) continue
    const view = new DataView(frame.buffer, frame.byteOffset)
    const mag = [view.getUint16(8, true), view.getUint16(10, true), view.getUint16(12, true)]
    const at = 16 + frame[14]
    const keys = []
    for (let k = 0; k < view.getUint16(2, true); k++) {
      const b = [0, 4, 8].map((o) => view.getInt32(at + 12 * k + o, true))
      keys.push(`${mag[0] === mag[1] && mag[1] === mag[2] ? mag[0] : mag.join('-')}/${b.join('/')}`)
    }
    out.set(view.getUint32(4, true), keys)
  }
  return out
}

describe('a live layer', () => {
  beforeEach(() => {
    vi.stubGlobal('Worker', FakeWorker)
    vi.stubGlobal('location', { protocol: 'http:', host: 'example:8000' })
  })
  afterEach(() => vi.unstubAllGlobals())

  it('connects to its socket, and pushed bricks replace what it had', () => {
    const source = new BrickSource('/volume/7/L1', 'tok', 1, 1 << 30, true)
    const worker = FakeWorker.last
    expect(worker.sent[0]).toEqual({ connect: 'ws://example:8000/volume/7/L1?token=tok' })
    const deliver = (data: Decoded | { open: true }) => worker.onmessage({ data })
    deliver({ open: true })
    const mag = parseMag('2-2-1')
    source.want(mag, [[1, 2, 3]], [1, 2, 3])
    source.flush()
    expect(source.get(mag, [1, 2, 3])).toBeUndefined()
    deliver({ kind: 'bricks', records: [{ requestId: 1, brick: [1, 2, 3], status: 0, dtype: 3, voxels: u32(5) }] })
    expect(source.get(mag, [1, 2, 3])?.[0]).toBe(5)
    const before = source.revision(mag, [1, 2, 3])
    // A stroke of this page's, taken in version 9, shows over the brick ...
    const preview = new Preview()
    source.preview = preview
    preview.add('s', { kind: 'brush', layer: 'L1', author: 1, time: 1, mag: '2-2-1', plane: 'xy', points: [[64, 128, 96]], radius: 1, segment: 8, erase: false, mode: 'all' }, [2, 2, 1])
    preview.setVersion('s', 9)
    expect(source.get(mag, [1, 2, 3])?.[0]).toBe(8)
    // ... until the server pushes the brick as of version 9.
    const pushed: string[] = []
    source.onPushed = (_version, keys) => pushed.push(...keys)
    deliver({ kind: 'pushed', version: 9, mag: [2, 2, 1], records: [{ requestId: 0, brick: [1, 2, 3], status: 0, dtype: 3, voxels: u32(6) }] })
    expect(pushed).toEqual(['2-2-1/1/2/3'])
    expect(source.revision(mag, [1, 2, 3])).not.toBe(before)
    expect(preview.touches('2-2-1/1/2/3')).toBe(false) // (it stays where it reaches other bricks)
    expect(source.get(mag, [1, 2, 3])?.[0]).toBe(6)
    // A lost connection: pushes were missed, so the cache goes.
    deliver({ closed: true } as unknown as Decoded)
    expect(source.get(mag, [1, 2, 3])).toBeUndefined()
    source.close()
  })

  it('keeps a brick marked stale shown until it has asked for it again', () => {
    const source = new BrickSource('/volume/7/L1', 'tok', 1, 1 << 30, true)
    const worker = FakeWorker.last
    const deliver = (data: Decoded | { open: true }) => worker.onmessage({ data })
    deliver({ open: true })
    const mag = parseMag('1')
    const view = (): void => {
      source.want(mag, [[0, 0, 0]], [0, 0, 0])
      source.flush()
    }
    source.want(mag, [[0, 0, 0], [5, 0, 0]], [0, 0, 0])
    source.flush()
    deliver({ kind: 'bricks', records: [
      { requestId: 1, brick: [0, 0, 0], status: 0, dtype: 3, voxels: u32(5) },
      { requestId: 1, brick: [5, 0, 0], status: 0, dtype: 3, voxels: u32(1) },
    ] })  // prettier-ignore
    const preview = new Preview()
    source.preview = preview
    preview.add('s', { kind: 'brush', layer: 'L1', author: 1, time: 1, mag: '1', plane: 'xy', points: [[3, 3, 3]], radius: 1, segment: 8, erase: false, mode: 'all' }, [1, 1, 1])
    preview.setVersion('s', 9)
    const before = source.revision(mag, [0, 0, 0])
    // Version 9 changed both; the server held its limit: marks, no voxels.
    deliver({ kind: 'pushed', version: 9, mag: [1, 1, 1], records: [
      { requestId: 0, brick: [0, 0, 0], status: 3, dtype: 3, voxels: null },
      { requestId: 0, brick: [5, 0, 0], status: 3, dtype: 3, voxels: null },
    ] })  // prettier-ignore
    expect(source.get(mag, [0, 0, 0])?.[0]).toBe(5) // what it had, until the new voxels come
    expect(preview.touches('1/0/0/0')).toBe(true) // this page's stroke still shows over it
    view() // (5, 0, 0) is out of view: forgotten, not asked for
    const requests = asked(worker)
    expect(requests.get(2)).toEqual(['1/0/0/0'])
    expect(requests.size).toBe(2)
    expect(source.get(mag, [5, 0, 0])).toBeUndefined()
    deliver({ kind: 'bricks', records: [{ requestId: 2, brick: [0, 0, 0], status: 0, dtype: 3, voxels: u32(6) }] })
    expect(source.get(mag, [0, 0, 0])?.[0]).toBe(6)
    expect(source.revision(mag, [0, 0, 0])).not.toBe(before) // views upload it again
    expect(preview.touches('1/0/0/0')).toBe(false) // asked after the mark: holds version 9
    view()
    expect(asked(worker).size).toBe(2) // fresh now: not asked again
    source.close()
  })

  it('asks again for a brick marked stale while an earlier answer was on its way', () => {
    const source = new BrickSource('/volume/7/L1', 'tok', 1, 1 << 30, true)
    const worker = FakeWorker.last
    const deliver = (data: Decoded | { open: true }) => worker.onmessage({ data })
    deliver({ open: true })
    const mag = parseMag('1')
    const view = (): void => {
      source.want(mag, [[0, 0, 0]], [0, 0, 0])
      source.flush()
    }
    view()
    deliver({ kind: 'pushed', version: 4, mag: [1, 1, 1], records: [{ requestId: 0, brick: [0, 0, 0], status: 3, dtype: 3, voxels: null }] })
    view() // request 1 is still open: not asked twice
    expect(asked(worker).size).toBe(1)
    deliver({ kind: 'bricks', records: [{ requestId: 1, brick: [0, 0, 0], status: 0, dtype: 3, voxels: u32(5) }] })
    expect(source.get(mag, [0, 0, 0])?.[0]).toBe(5) // shown, but it may predate version 4 ...
    view()
    expect(asked(worker).get(2)).toEqual(['1/0/0/0']) // ... so asked for again
    source.close()
  })

  it('hands on MAPPED frames and arriving voxels; a lost socket is a reset', () => {
    const source = new BrickSource('/volume/7/L1', 'tok', 1, 1 << 30, true)
    const worker = FakeWorker.last
    const deliver = (data: Decoded | { open: true } | { closed: true }) => worker.onmessage({ data })
    deliver({ open: true })
    const mapped: [number, boolean, string[]][] = []
    source.onMapped = (m) => mapped.push([m.version, m.reset, Array.from(m.pairs, String)])
    const voxels: number[] = []
    source.onVoxels = (data) => voxels.push(Number(data[0]))
    const mag = parseMag('1')
    source.want(mag, [[0, 0, 0]], [0, 0, 0])
    source.flush()
    deliver({ kind: 'bricks', records: [{ requestId: 1, brick: [0, 0, 0], status: 0, dtype: 3, voxels: u32(5) }] })
    deliver({ kind: 'pushed', version: 3, mag: [1, 1, 1], records: [{ requestId: 0, brick: [0, 0, 0], status: 0, dtype: 3, voxels: u32(6) }] })
    expect(voxels).toEqual([5, 6])
    deliver({ kind: 'mapped', version: 4, reset: false, pairs: new BigUint64Array([9n, 1n, 10n, 1n]) })
    deliver({ kind: 'mapped', version: 5, reset: true, pairs: new BigUint64Array(0) })
    deliver({ closed: true })
    expect(mapped).toEqual([[4, false, ['9', '1', '10', '1']], [5, true, []], [0, true, []]])
    source.close()
  })

  it('keeps uint64 bricks exact: ids above 2^53 read as bigints', () => {
    const source = new BrickSource('/data/d/seg', 'tok', 1)
    const worker = FakeWorker.last
    worker.onmessage({ data: { open: true } })
    const mag = parseMag('1')
    source.want(mag, [[0, 0, 0], [1, 0, 0]], [0, 0, 0])
    source.flush()
    expect(asked(worker).get(1)).toEqual(['1/0/0/0', '1/1/0/0'])
    const big = 2n ** 64n - 2n
    worker.onmessage({ data: { kind: 'bricks', records: [
      { requestId: 1, brick: [0, 0, 0], status: 0, dtype: 4, voxels: u64(big) },
      { requestId: 1, brick: [1, 0, 0], status: 0, dtype: 4, voxels: u64(42n) },
    ] } })  // prettier-ignore
    expect(source.get(mag, [0, 0, 0])).toBeInstanceOf(BigUint64Array)
    expect(voxelAt(source, mag, [3, 4, 5])).toBe(big)
    expect(String(voxelAt(source, mag, [3, 4, 5]))).toBe('18446744073709551614')
    expect(voxelAt(source, mag, [40, 4, 5])).toBe(42) // a number where it fits
    source.close()
  })
})
