// The pure pieces of the volume tools: a stroke's voxels (as the server's
// collab/segmentation/paint.py paints them), stroke → op, the preview over
// cached bricks, blocks of segment ids.
import { describe, expect, it } from 'vitest'
import { IdBlocks, unusedBlocks } from '../src/segmentation/ids'
import {
  type BrushOp,
  brushBricks,
  layerMags,
  magFactors,
  MAX_POINTS,
  paintBrush,
  planeAxes,
  thinStroke,
  type Vec3,
} from '../src/segmentation/ops'
import { Stroke, strokeKind } from '../src/tools/brush'
import { fillOp } from '../src/tools/fill'
import { brickKey } from '../src/volume/brick_cache'
import { Preview, SETTLED_MS } from '../src/volume/preview'

const brush = (points: Vec3[], radius: number, segment = 5, extra: Partial<BrushOp> = {}): BrushOp => ({
  kind: 'brush',
  layer: 'L1',
  author: 1,
  time: 1,
  mag: '1',
  plane: 'xy',
  points,
  radius,
  segment,
  erase: false,
  mode: 'all',
  ...extra,
})

const brick = () => new Uint32Array(32 ** 3)
const at = (i: number, j: number, k: number) => i + 32 * (j + 32 * k)

/** paint.py's mask, written out voxel by voxel (no neighbourhoods): the reference. */
function reference(op: BrushOp, f: Vec3, b: Vec3): Set<number> {
  const [u, v, w] = planeAxes(op.plane)
  const pts = op.points.map((p) => p.map((c, a) => Math.floor(c / f[a])) as Vec3)
  const origin = b.map((c) => c * 32)
  const out = new Set<number>()
  const slice = pts[0][w] - origin[w]
  if (slice < 0 || slice >= 32) return out
  const cu = pts.map((p) => (p[u] + 0.5) * f[u])
  const cv = pts.map((p) => (p[v] + 0.5) * f[v])
  const r2 = op.radius * op.radius
  for (let j = 0; j < 32; j++) {
    for (let i = 0; i < 32; i++) {
      const gu = (i + origin[u] + 0.5) * f[u]
      const gv = (j + origin[v] + 0.5) * f[v]
      let inside = false
      if (pts.length === 1) inside = (gu - cu[0]) ** 2 + (gv - cv[0]) ** 2 <= r2
      for (let s = 0; s + 1 < pts.length && !inside; s++) {
        const du = cu[s + 1] - cu[s]
        const dv = cv[s + 1] - cv[s]
        const l2 = du * du + dv * dv
        const t = l2 === 0 ? 0 : Math.min(1, Math.max(0, ((gu - cu[s]) * du + (gv - cv[s]) * dv) / l2))
        inside = (gu - (cu[s] + t * du)) ** 2 + (gv - (cv[s] + t * dv)) ** 2 <= r2
      }
      const c = [0, 0, 0]
      c[u] = i
      c[v] = j
      c[w] = slice
      if (inside) out.add(at(c[0], c[1], c[2]))
    }
  }
  return out
}

function painted(voxels: Uint32Array): Set<number> {
  const out = new Set<number>()
  voxels.forEach((value, index) => value && out.add(index))
  return out
}

/** A small deterministic random generator (tests repeat exactly). */
function random(seed: number): () => number {
  return () => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31
    return seed / 2 ** 31
  }
}

describe('brush geometry', () => {
  it('paints what the server paints (tests/segmentation/test_materialise.py)', () => {
    const left = brick()
    const right = brick()
    const five = brush([[20, 10, 3], [44, 10, 3]], 3)
    const six = brush([[40, 10, 3]], 2, 6)
    for (const op of [five, six]) {
      paintBrush(op, [1, 1, 1], [0, 0, 0], left)
      paintBrush(op, [1, 1, 1], [1, 0, 0], right)
    }
    const row = [...Array(32).keys()].map((x) => left[at(x, 10, 3)]).concat([...Array(32).keys()].map((x) => right[at(x, 10, 3)]))
    expect(row.slice(17, 38)).toEqual(Array(21).fill(5))
    expect(row.slice(38, 43)).toEqual(Array(5).fill(6))
    expect(row.slice(43, 48)).toEqual(Array(5).fill(5))
    expect([row[16], row[48]]).toEqual([0, 0])
    expect([...painted(left)].every((index) => Math.floor(index / 1024) === 3)).toBe(true) // one slice
  })

  it('a one-point disc, as the HTTP test expects it', () => {
    const voxels = brick()
    paintBrush(brush([[5, 5, 2]], 2, 99), [1, 1, 1], [0, 0, 0], voxels)
    const want = new Set<number>()
    for (let y = 0; y < 32; y++) for (let x = 0; x < 32; x++) if ((x + 0.5 - 5.5) ** 2 + (y + 0.5 - 5.5) ** 2 <= 4) want.add(at(x, y, 2))
    expect(painted(voxels)).toEqual(want)
  })

  it('matches the reference at any mag and plane, whole or grown point by point', () => {
    const next = random(3)
    for (let trial = 0; trial < 60; trial++) {
      const plane = (['xy', 'xz', 'yz'] as const)[trial % 3]
      const f: Vec3 = [[1, 1, 1], [2, 2, 1], [4, 4, 2]][trial % 3] as Vec3
      const [u, v, w] = planeAxes(plane)
      const n = 1 + Math.floor(next() * 6)
      const slice = Math.floor(next() * 60)
      const points: Vec3[] = []
      for (let k = 0; k < n; k++) {
        const p: Vec3 = [0, 0, 0]
        p[u] = Math.floor(next() * 120)
        p[v] = Math.floor(next() * 120)
        p[w] = slice
        points.push(p)
      }
      const op = brush(points, 0.5 + next() * 20, 7, { plane })
      const reached = new Set(brushBricks(op, f).map((b) => b.join()))
      for (let bu = 0; bu < 4; bu++) {
        for (let bv = 0; bv < 4; bv++) {
          const b: Vec3 = [0, 0, 0]
          b[u] = bu
          b[v] = bv
          b[w] = Math.floor(Math.floor(slice / f[w]) / 32)
          const want = reference(op, f, b)
          const whole = brick()
          paintBrush(op, f, b, whole)
          expect(painted(whole)).toEqual(want)
          if (want.size) expect(reached.has(b.join())).toBe(true)
          // Grown one point at a time: the same voxels.
          const grown = brick()
          for (let k = 1; k <= n; k++) paintBrush({ ...op, points: points.slice(0, k) }, f, b, grown, k - 1)
          expect(painted(grown)).toEqual(want)
        }
      }
    }
  })

  it('erases, and paints only empty voxels in mode "empty"', () => {
    const voxels = brick()
    voxels[at(5, 5, 0)] = 3
    paintBrush(brush([[5, 5, 0]], 2, 9, { mode: 'empty' }), [1, 1, 1], [0, 0, 0], voxels)
    expect([voxels[at(5, 5, 0)], voxels[at(6, 5, 0)]]).toEqual([3, 9])
    paintBrush(brush([[5, 5, 0]], 1, 0, { erase: true }), [1, 1, 1], [0, 0, 0], voxels)
    expect([voxels[at(5, 5, 0)], voxels[at(6, 5, 0)], voxels[at(7, 5, 0)]]).toEqual([0, 0, 9])
  })
})

describe('stroke → op', () => {
  const settings = {
    layer: 'L1',
    author: 4,
    plane: 'xy' as const,
    mag: { name: '2-2-1', factor: [2, 2, 1] as Vec3 },
    box: { topLeft: [1, 0, 0] as Vec3, size: [100, 80, 70] as Vec3 },
    radius: 3,
    segment: 12,
    erase: false,
    mode: 'all' as const,
  }

  it('takes one centre per mag voxel, in the first slice, inside the box', () => {
    const stroke = new Stroke(settings, [10, 10, 5])
    expect(stroke.add([11, 11, 5])).toEqual([]) // the same mag-2 voxel
    expect(stroke.add([12, 10, 6])).toEqual([[12, 10, 5]]) // the slice stays
    stroke.add([-40, 500, 5])
    expect(stroke.points).toEqual([[10, 10, 5], [12, 10, 5], [1, 78, 5]])
    const op = stroke.finish(1234)
    expect(op).toEqual({
      kind: 'brush', layer: 'L1', author: 4, time: 1234, mag: '2-2-1', plane: 'xy',
      points: [[10, 10, 5], [12, 10, 5], [1, 78, 5]], radius: 3, segment: 12, erase: false, mode: 'all',
    })
  })

  it('a drag longer than one op takes stops the stroke (the page goes on with a next one)', () => {
    const stroke = new Stroke({ ...settings, mag: { name: '1', factor: [1, 1, 1] }, box: null }, [10, 10, 5])
    expect(stroke.add([1034, 10, 5])).toEqual([[1034, 10, 5]])
    expect(stroke.add([1035, 12, 5])).toBeNull()
    expect(stroke.last).toEqual([1034, 10, 5])
  })

  it('thins a stroke: a straight drag is its two ends; never more than the server takes', () => {
    const line: Vec3[] = [...Array(200).keys()].map((x) => [x, 7, 1])
    expect(thinStroke(line, 0.5)).toEqual([[0, 7, 1], [199, 7, 1]])
    const zigzag: Vec3[] = [...Array(12_000).keys()].map((x) => [x, x % 2 ? 5 : 0, 1])
    const thin = thinStroke(zigzag, 0.5)
    expect(thin.length).toBe(MAX_POINTS)
    expect([thin[0], thin[MAX_POINTS - 1]]).toEqual([zigzag[0], zigzag[11_999]])
  })

  it("WEBKNOSSOS's modifiers: Ctrl inverts the mode, Ctrl+Shift erases", () => {
    expect(strokeKind('brush', 'all', { ctrl: false, shift: false })).toEqual({ erase: false, mode: 'all' })
    expect(strokeKind('brush', 'all', { ctrl: true, shift: false })).toEqual({ erase: false, mode: 'empty' })
    expect(strokeKind('brush', 'empty', { ctrl: true, shift: false })).toEqual({ erase: false, mode: 'all' })
    expect(strokeKind('brush', 'empty', { ctrl: true, shift: true })).toEqual({ erase: true, mode: 'all' })
    expect(strokeKind('erase', 'empty', { ctrl: false, shift: false })).toEqual({ erase: true, mode: 'all' })
    const erasing = new Stroke({ ...settings, erase: true }, [20, 20, 5]).finish(1)
    expect([erasing.segment, erasing.erase, erasing.mode]).toEqual([0, true, 'all'])
  })

  it('a fill inside the box only', () => {
    expect(fillOp({ ...settings }, [0, 5, 5], 1)).toBeNull()
    expect(fillOp({ ...settings }, [5, 5, 5], 1)).toEqual({
      kind: 'fill2d', layer: 'L1', author: 4, time: 1, mag: '2-2-1', plane: 'xy', seed: [5, 5, 5], segment: 12,
    })
  })
})

describe("a new layer's mags, as the server takes them", () => {
  it('finest first, each a whole multiple of the one before, at most 64 voxels a step', () => {
    expect(layerMags(['1', '2', '4-4-2', '8-8-4'])).toEqual(['1', '2', '4-4-2', '8-8-4'])
    expect(layerMags(['1', '2-2-1', '4-4-1', '16-16-4'])).toEqual(['1', '2-2-1', '4-4-1', '16-16-4'])
    expect(layerMags(['1', '8', '16'])).toEqual(['1']) // 512 voxels a step
    expect(layerMags(['1', '3-2-2', '4'])).toEqual(['1', '3-2-2'])
    expect(layerMags(['1', '1'])).toEqual(['1'])
    expect(layerMags(['x'])).toEqual([])
    expect(magFactors('2-2-1')).toEqual([2, 2, 1])
  })
})

describe('the preview of strokes not painted yet', () => {
  const key = brickKey('1', [0, 0, 0])

  it('paints pending strokes over the cached brick until a push holding them', () => {
    const preview = new Preview()
    const base = brick()
    expect(preview.compose(key, base)).toBe(base)
    preview.add('s1', brush([[5, 5, 0]], 2, 8), [1, 1, 1])
    const r0 = preview.revision(key)
    expect(preview.touches(key)).toBe(true)
    expect(preview.compose(key, base)[at(5, 5, 0)]).toBe(8)
    expect(base[at(5, 5, 0)]).toBe(0) // the cache is not touched
    preview.extend('s1', [[20, 5, 0]])
    expect(preview.revision(key)).toBeGreaterThan(r0)
    expect(preview.compose(key, base)[at(15, 5, 0)]).toBe(8)
    // A second stroke, taken in version 9 after the first's 8.
    preview.add('s2', brush([[5, 20, 0]], 2, 4), [1, 1, 1])
    preview.setVersion('s1', 8)
    preview.setVersion('s2', 9)
    const pushed = brick()
    pushed[at(5, 5, 0)] = 8
    preview.pushed(8, [key])
    expect(preview.has('s1')).toBe(false)
    const shown = preview.compose(key, pushed)
    expect([shown[at(5, 5, 0)], shown[at(15, 5, 0)], shown[at(5, 20, 0)]]).toEqual([8, 0, 4])
    preview.pushed(9, [key])
    expect(preview.touches(key)).toBe(false)
    expect(preview.compose(key, pushed)).toBe(pushed)
  })

  it('a stroke not yet taken stays; an undone one goes', () => {
    const preview = new Preview()
    preview.add('s1', brush([[5, 5, 0]], 2, 8), [1, 1, 1])
    preview.pushed(100, [key])
    expect(preview.touches(key)).toBe(true)
    preview.remove('s1')
    expect(preview.touches(key)).toBe(false)
    expect(preview.size).toBe(0)
  })

  it('a stroke that changed nothing somewhere goes a while after pushes of its version', () => {
    const preview = new Preview()
    preview.add('s1', brush([[5, 5, 0]], 2, 8), [1, 1, 1])
    preview.setVersion('s1', 4)
    const elsewhere = brickKey('1', [7, 7, 0])
    preview.pushed(5, [elsewhere], 1000)
    expect(preview.touches(key)).toBe(true)
    preview.pushed(6, [elsewhere], 1000 + SETTLED_MS + 1)
    expect(preview.touches(key)).toBe(false)
  })

  it('a stroke across bricks shows in each', () => {
    const preview = new Preview()
    preview.add('s', brush([[30, 5, 0], [34, 5, 0]], 1, 3), [1, 1, 1])
    const right = brickKey('1', [1, 0, 0])
    expect(preview.compose(right, brick())[at(1, 5, 0)]).toBe(3)
    expect(preview.compose(key, brick())[at(30, 5, 0)]).toBe(3)
  })
})

describe('blocks of segment ids', () => {
  it('hands out ids in order, keeping one block ahead', async () => {
    const asked: number[] = []
    let next = 100
    const blocks = new IdBlocks(async (size) => {
      asked.push(size)
      const first = next
      next += size
      return { first, count: size }
    }, 4)
    expect(blocks.take()).toBeNull() // nothing in hand yet: a refill starts
    expect(await blocks.next()).toBe(100)
    await blocks.refill()
    expect(blocks.available).toBeGreaterThan(4) // more than a block in hand
    const ids = [blocks.take(), blocks.take(), blocks.take(), blocks.take(), blocks.take()]
    expect(ids).toEqual([101, 102, 103, 104, 105])
    await blocks.refill()
    expect(blocks.available).toBeGreaterThan(4)
    expect(asked.every((n) => n === 4)).toBe(true)
  })

  it('one request at a time; a failure is said, and the next take tries again', async () => {
    let calls = 0
    let fail = true
    const blocks = new IdBlocks(async () => {
      calls += 1
      if (fail) throw new Error('offline')
      return { first: 1, count: 8 }
    }, 8)
    await Promise.all([blocks.refill(), blocks.refill()])
    expect(calls).toBe(1)
    expect(blocks.error).toBe('offline')
    fail = false
    expect(blocks.take()).toBeNull()
    await blocks.refill()
    expect(blocks.error).toBeNull()
    expect(blocks.take()).toBe(1)
  })

  it('a page reuses what its own earlier blocks left unused', () => {
    const entries: [string, { count: number; user: number | null }][] = [
      ['L1/10', { count: 5, user: 7 }],
      ['L1/20', { count: 5, user: 8 }],
      ['L2/30', { count: 5, user: 7 }],
      ['L1/40', { count: 3, user: 7 }],
    ]
    expect(unusedBlocks(entries, 'L1', 7, new Set([10, 12, 40, 41, 42]))).toEqual([{ first: 13, count: 2 }])
    const blocks = new IdBlocks(async () => ({ first: 1000, count: 16 }))
    blocks.seed([{ first: 13, count: 2 }])
    expect([blocks.take(), blocks.take()]).toEqual([13, 14])
  })
})
