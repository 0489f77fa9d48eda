// The brush and the eraser (WEBKNOSSOS's B and E): a stroke is the cursor's
// path while the button is down, in the plane's slice at the viewport's
// mag; released, it becomes one `brush` op (docs/schema.md): its centres
// thinned, inside the layer's box, its centres at most MAX_STROKE_SPAN
// apart (a longer drag goes on as a next stroke). Pure:
// client/test/segmentation.test.ts.

import {
  type BoundingBox,
  type BrushOp,
  clampToBox,
  MAX_RADIUS,
  MAX_STROKE_SPAN,
  PLANE_AXIS,
  type PlaneName,
  strokePoint,
  thinStroke,
  type Vec3,
} from '../segmentation/ops'

export interface StrokeSettings {
  layer: string
  author: number | null
  plane: PlaneName
  /** The mag the viewport draws at: its name and factors. */
  mag: { name: string; factor: Vec3 }
  /** The layer's bounding box (null: none given). */
  box: BoundingBox | null
  radius: number
  segment: number
  erase: boolean
  mode: 'all' | 'empty'
}

export class Stroke {
  /** The stroke's centres so far (one per mag voxel the cursor crossed). */
  readonly points: Vec3[] = []
  private readonly axis: number
  private readonly slice: number
  private readonly low: Vec3 = [Infinity, Infinity, Infinity]
  private readonly high: Vec3 = [-Infinity, -Infinity, -Infinity]

  /** ``start``: the cursor's voxel (mag 1) where the button went down; its slice is the stroke's. */
  constructor(
    readonly settings: StrokeSettings,
    start: Vec3,
  ) {
    this.axis = PLANE_AXIS[settings.plane]
    this.slice = clampToBox(start, settings.box)[this.axis]
    this.add(start)
  }

  /** The cursor moved to ``p``: the centres it adds (none when still in the
   *  same mag voxel); null when ``p`` lies too far from the stroke's start
   *  for one op (the page then goes on with a next stroke). */
  add(p: Vec3): Vec3[] | null {
    const { mag, box } = this.settings
    const point = strokePoint(p, mag.factor, box, this.axis, this.slice)
    const last = this.points[this.points.length - 1]
    if (last && last.every((c, a) => c === point[a])) return []
    const low = point.map((c, a) => Math.min(c, this.low[a]))
    const high = point.map((c, a) => Math.max(c, this.high[a]))
    if (last && high.some((c, a) => c - low[a] > MAX_STROKE_SPAN)) return null
    this.low.splice(0, 3, ...low)
    this.high.splice(0, 3, ...high)
    this.points.push(point)
    return [point]
  }

  /** Where the stroke is now (its last centre). */
  get last(): Vec3 {
    return this.points[this.points.length - 1]
  }

  /** The op as the preview shows it now (every centre). */
  draft(time: number): BrushOp {
    return brushOp(this.settings, this.points, time)
  }

  /** The op written on release: the centres thinned to within half a voxel of the mag. */
  finish(time: number): BrushOp {
    const f = this.settings.mag.factor
    return brushOp(this.settings, thinStroke(this.points, 0.5 * Math.min(f[0], f[1], f[2])), time)
  }
}

export function brushOp(s: StrokeSettings, points: Vec3[], time: number): BrushOp {
  return {
    kind: 'brush',
    layer: s.layer,
    author: s.author,
    time,
    mag: s.mag.name,
    plane: s.plane,
    points: points.map((p) => [...p] as Vec3),
    radius: Math.min(MAX_RADIUS, Math.max(1, s.radius)),
    segment: s.erase ? 0 : s.segment,
    erase: s.erase,
    mode: s.erase ? 'all' : s.mode,
  }
}

/** WEBKNOSSOS's modifiers for one stroke: Ctrl+Shift erases with the brush,
 *  Ctrl alone inverts the overwrite mode. */
export function strokeKind(
  tool: 'brush' | 'erase',
  mode: 'all' | 'empty',
  keys: { ctrl: boolean; shift: boolean },
): { erase: boolean; mode: 'all' | 'empty' } {
  if (tool === 'erase' || (keys.ctrl && keys.shift)) return { erase: true, mode: 'all' }
  if (keys.ctrl) return { erase: false, mode: mode === 'all' ? 'empty' : 'all' }
  return { erase: false, mode }
}
