// Voxel operations of the segmentation document (docs/schema.md,
// "Voxel operations") as the page writes them, and what a brush stroke does
// to a brick's voxels: the geometry of collab/segmentation/paint.py, so the
// local preview of a stroke paints what the server will. Pure (no DOM, no
// Yjs): client/test/segmentation.test.ts checks it.

export type Vec3 = [number, number, number]
export type PlaneName = 'xy' | 'xz' | 'yz'

/** The axis through each plane (its slice), as collab/segmentation/ops.py's PLANES. */
export const PLANE_AXIS: Record<PlaneName, 0 | 1 | 2> = { xy: 2, xz: 1, yz: 0 }

/** Bounds the server checks (collab/segmentation/ops.py): an op outside
 *  them closes the page's socket for good (4422), so the page never writes one. */
export const MAX_POINTS = 10_000
export const MAX_RADIUS = 256
export const MAX_COORD = 2 ** 31
/** How far a stroke's centres may lie apart along each axis (voxels of mag 1). */
export const MAX_STROKE_SPAN = 1024
/** Mags a layer keeps, each at most this many voxels of the one before per voxel. */
export const MAX_LAYER_MAGS = 16
export const MAX_MAG_STEP = 64

const BRICK = 32

interface OpBase {
  layer: string
  author: number | null
  time: number
  mag: string
}

export interface BrushOp extends OpBase {
  kind: 'brush'
  plane: PlaneName
  points: Vec3[]
  radius: number
  segment: number
  erase: boolean
  mode: 'all' | 'empty'
}

export interface Fill2dOp extends OpBase {
  kind: 'fill2d'
  plane: PlaneName
  seed: Vec3
  segment: number
}

export type VoxelOp = BrushOp | Fill2dOp

/** A brick's voxels; a uint64 layer's as BigUint64Array. */
export type Voxels = Uint8Array | Uint16Array | Uint32Array | BigUint64Array

/** The two in-plane axes (u, v), in axis order, as paint.py takes them. */
export function planeAxes(plane: PlaneName): [number, number, number] {
  const w = PLANE_AXIS[plane]
  const [u, v] = [0, 1, 2].filter((a) => a !== w)
  return [u, v, w]
}

const scaled = (p: Vec3, f: Vec3): Vec3 => [Math.floor(p[0] / f[0]), Math.floor(p[1] / f[1]), Math.floor(p[2] / f[2])]

/** The bricks (at mag ``f``) that points ``from`` on of a brush op may change:
 *  the polyline from the point before ``from`` (its joint) to the last. */
export function brushBricks(op: BrushOp, f: Vec3, from = 0): Vec3[] {
  const [u, v, w] = planeAxes(op.plane)
  const points = op.points.slice(Math.max(0, from - 1)).map((p) => scaled(p, f))
  if (!points.length) return []
  const low = [0, 0, 0]
  const high = [0, 0, 0]
  for (const a of [u, v]) {
    const reach = Math.ceil(op.radius / f[a])
    low[a] = Math.max(0, Math.min(...points.map((p) => p[a])) - reach)
    high[a] = Math.max(...points.map((p) => p[a])) + 1 + reach
  }
  const out: Vec3[] = []
  const bw = Math.floor(points[0][w] / BRICK)
  for (let bv = Math.floor(low[v] / BRICK); bv <= Math.floor((high[v] - 1) / BRICK); bv++) {
    for (let bu = Math.floor(low[u] / BRICK); bu <= Math.floor((high[u] - 1) / BRICK); bu++) {
      const b: Vec3 = [0, 0, 0]
      b[u] = bu
      b[v] = bv
      b[w] = bw
      out.push(b)
    }
  }
  return out
}

/**
 * Paint a brush op into one brick's voxels (at mag ``f``; voxel (i, j, k) at
 * i + 32 (j + 32 k)), in place: every voxel of the stroke's slice within
 * ``radius`` (voxels of mag 1) of the polyline. ``from`` > 0 paints only the
 * part from point ``from − 1`` on (a stroke that grew: what was painted
 * before stays). Distances as paint.py measures them: between voxel centres,
 * in voxels of mag 1. Says whether any voxel changed.
 */
export function paintBrush(op: BrushOp, f: Vec3, brick: Vec3, voxels: Voxels, from = 0): boolean {
  const [u, v, w] = planeAxes(op.plane)
  const start = op.points.length === 1 ? 0 : Math.max(0, from - 1)
  const points = op.points.slice(start).map((p) => scaled(p, f))
  if (!points.length || (from > 0 && op.points.length > 1 && points.length < 2)) return false
  const origin: Vec3 = [brick[0] * BRICK, brick[1] * BRICK, brick[2] * BRICK]
  const slice = points[0][w] - origin[w]
  if (slice < 0 || slice >= BRICK) return false
  const cu = points.map((p) => (p[u] + 0.5) * f[u])
  const cv = points.map((p) => (p[v] + 0.5) * f[v])
  const r = op.radius
  const r2 = r * r
  const strides = [1, BRICK, BRICK * BRICK]
  const base = slice * strides[w]
  const value = op.erase ? 0 : op.segment
  const wide = voxels instanceof BigUint64Array ? voxels : null
  const big = wide ? BigInt(value) : 0n
  const onlyEmpty = !op.erase && op.mode === 'empty'
  let changed = false
  const segments = points.length === 1 ? 1 : points.length - 1
  for (let s = 0; s < segments; s++) {
    const au = cu[s]
    const av = cv[s]
    const bu = points.length === 1 ? au : cu[s + 1]
    const bv = points.length === 1 ? av : cv[s + 1]
    const du = bu - au
    const dv = bv - av
    const length2 = du * du + dv * dv
    // Only the segment's neighbourhood (a superset: the distance decides).
    const i0 = Math.max(0, Math.floor((Math.min(au, bu) - r) / f[u] - 0.5) - origin[u] - 1)
    const i1 = Math.min(BRICK - 1, Math.ceil((Math.max(au, bu) + r) / f[u] - 0.5) - origin[u] + 1)
    const j0 = Math.max(0, Math.floor((Math.min(av, bv) - r) / f[v] - 0.5) - origin[v] - 1)
    const j1 = Math.min(BRICK - 1, Math.ceil((Math.max(av, bv) + r) / f[v] - 0.5) - origin[v] + 1)
    for (let j = j0; j <= j1; j++) {
      const gv = (j + origin[v] + 0.5) * f[v]
      for (let i = i0; i <= i1; i++) {
        const gu = (i + origin[u] + 0.5) * f[u]
        let t = 0
        if (length2 !== 0) t = Math.min(1, Math.max(0, ((gu - au) * du + (gv - av) * dv) / length2))
        const eu = gu - (au + t * du)
        const ev = gv - (av + t * dv)
        if (eu * eu + ev * ev > r2) continue
        const at = base + i * strides[u] + j * strides[v]
        const old = voxels[at]
        if (onlyEmpty && old !== 0 && old !== 0n) continue
        if (wide) {
          if (old === big) continue
          wide[at] = big
        } else {
          if (old === value) continue
          ;(voxels as Uint32Array)[at] = value
        }
        changed = true
      }
    }
  }
  return changed
}

export interface BoundingBox {
  topLeft: Vec3
  size: Vec3
}

/** A position moved into the box (and into [0, 2^31)), as integers. */
export function clampToBox(p: Vec3, box: BoundingBox | null): Vec3 {
  return p.map((c, a) => {
    let x = Math.floor(c)
    if (box) x = Math.min(box.topLeft[a] + box.size[a] - 1, Math.max(box.topLeft[a], x))
    return Math.min(MAX_COORD - 1, Math.max(0, x))
  }) as Vec3
}

export function insideBox(p: Vec3, box: BoundingBox | null): boolean {
  return p.every(
    (c, a) => Number.isInteger(c) && c >= 0 && c < MAX_COORD && (!box || (c >= box.topLeft[a] && c < box.topLeft[a] + box.size[a])),
  )
}

/**
 * Where a cursor at mag-1 voxel ``p`` paints: the first mag-1 voxel of the
 * mag-``f`` voxel under it (the server divides by ``f`` and floors), inside
 * the layer's box (an op outside it is refused with 4422), in slice ``slice``
 * of the plane's axis.
 */
export function strokePoint(p: Vec3, f: Vec3, box: BoundingBox | null, axis: number, slice: number): Vec3 {
  const q = [...p] as Vec3
  q[axis] = slice
  const inside = clampToBox(q, box)
  return inside.map((c, a) => {
    const snapped = Math.floor(c / f[a]) * f[a]
    return box ? Math.max(box.topLeft[a], snapped) : snapped
  }) as Vec3
}

/**
 * A stroke's centres thinned for the op: consecutive repeats dropped, then
 * Ramer–Douglas–Peucker within ``tolerance`` (voxels of mag 1): the
 * polyline through what is kept stays within ``tolerance`` of every centre.
 * A stroke still longer than the server takes keeps every k-th centre.
 */
export function thinStroke(points: Vec3[], tolerance: number): Vec3[] {
  const unique = points.filter((p, k) => k === 0 || p.some((c, a) => c !== points[k - 1][a]))
  const kept = douglasPeucker(unique, tolerance)
  return kept.length <= MAX_POINTS ? kept : everyKth(kept, MAX_POINTS)
}

/** At most ``limit`` of ``points``, evenly spaced, the first and the last kept. */
function everyKth(points: Vec3[], limit: number): Vec3[] {
  const step = (points.length - 1) / (limit - 1)
  return Array.from({ length: limit }, (_, k) => points[Math.round(k * step)])
}

function douglasPeucker(points: Vec3[], epsilon: number): Vec3[] {
  if (points.length <= 2) return points
  const keep = new Uint8Array(points.length)
  keep[0] = keep[points.length - 1] = 1
  const stack: [number, number][] = [[0, points.length - 1]]
  while (stack.length) {
    const [a, b] = stack.pop() as [number, number]
    let worst = -1
    let at = -1
    const middle = (a + b) / 2
    for (let k = a + 1; k < b; k++) {
      const d = distanceToSegment(points[k], points[a], points[b])
      // Ties go to the middle: even splits (a wiggle of equal bumps is O(n log n), not O(n²)).
      if (d > worst || (d === worst && Math.abs(k - middle) < Math.abs(at - middle))) {
        worst = d
        at = k
      }
    }
    if (at >= 0 && worst > epsilon) {
      keep[at] = 1
      stack.push([a, at], [at, b])
    }
  }
  return points.filter((_, k) => keep[k])
}

function distanceToSegment(p: Vec3, a: Vec3, b: Vec3): number {
  const d = [b[0] - a[0], b[1] - a[1], b[2] - a[2]]
  const length2 = d[0] * d[0] + d[1] * d[1] + d[2] * d[2]
  const t = length2 ? Math.min(1, Math.max(0, ((p[0] - a[0]) * d[0] + (p[1] - a[1]) * d[1] + (p[2] - a[2]) * d[2]) / length2)) : 0
  return Math.hypot(p[0] - a[0] - t * d[0], p[1] - a[1] - t * d[1], p[2] - a[2] - t * d[2])
}

/** A mag name's factors ("2" → 2, 2, 2; "2-2-1" → 2, 2, 1), or null when it is none. */
export function magFactors(name: string): Vec3 | null {
  const parts = name.split('-').map(Number)
  const f = parts.length === 1 ? [parts[0], parts[0], parts[0]] : parts
  return f.length === 3 && f.every((c) => Number.isInteger(c) && c >= 1) ? (f as Vec3) : null
}

/**
 * The mags a new layer keeps, as the server takes them (ops.py's
 * ``layer_mags``; a layer it refuses closes the socket for good): finest
 * first, each a whole multiple of the one before and at most
 * ``MAX_MAG_STEP`` of its voxels per voxel; the list ends before the first
 * that is not.
 */
export function layerMags(names: string[]): string[] {
  const out: string[] = []
  let previous: Vec3 | null = null
  for (const name of names.slice(0, MAX_LAYER_MAGS)) {
    const f = magFactors(name)
    if (!f) break
    if (previous) {
      const p: Vec3 = previous
      const ratio = f.map((c, a) => Math.floor(c / p[a]))
      const volume = ratio[0] * ratio[1] * ratio[2]
      if (f.some((c, a) => c % p[a] !== 0) || Math.min(...ratio) < 1 || volume <= 1 || volume > MAX_MAG_STEP) break
    }
    out.push(name)
    previous = f
  }
  return out
}

/** The largest segment id a layer's dtype holds (JavaScript numbers: at most 2^53 − 1). */
export function dtypeMax(dtype: string): number {
  return { uint8: 255, uint16: 65_535, uint32: 4_294_967_295 }[dtype] ?? Number.MAX_SAFE_INTEGER
}
