// A layer's bricks on the page (src/volume/bricks.ts) with its worker
// stubbed: PUSHED frames replace cached bricks (a new revision: views upload
// them again) and take the page's strokes they hold off the preview.
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import type { Decoded } from '../src/volume/brick_decode'
import { BrickSource, parseMag } from '../src/volume/bricks'
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
    deliver({ kind: 'bricks', records: [{ requestId: 1, brick: [1, 2, 3], dtype: 3, voxels: u32(5) }] })
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
    deliver({ kind: 'pushed', version: 9, mag: [2, 2, 1], records: [{ requestId: 0, brick: [1, 2, 3], dtype: 3, voxels: u32(6) }] })
    expect(pushed).toEqual(['2-2-1/1/2/3'])
    expect(source.revision(mag, [1, 2, 3])).not.toBe(before)
    expect(preview.touches('2-2-1/1/2/3')).toBe(false) // (it stays where it reaches other bricks)
    expect(source.get(mag, [1, 2, 3])?.[0]).toBe(6)
    // A lost connection: pushes were missed, so the cache goes.
    deliver({ closed: true } as unknown as Decoded)
    expect(source.get(mag, [1, 2, 3])).toBeUndefined()
    source.close()
  })
})
