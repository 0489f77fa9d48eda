// This page's strokes shown at once, before the server has painted them:
// each stroke the page draws is kept here with the bricks it reaches, and a
// cached brick it reaches is shown with the stroke painted over it
// (../segmentation/ops.ts paints as the server does). A stroke leaves a
// brick when the server pushes that brick at a version holding the stroke
// (the pushed voxels include it), or when the stroke's op leaves the
// document (undone). A stroke that changed nothing in a brick gets no push
// there: it goes ``SETTLED_MS`` after pushes of its version began to
// arrive (what it shows is then what the server has). Pure (no DOM, no
// socket): client/test/segmentation.test.ts.

import { type BrushOp, brushBricks, paintBrush, type Vec3, type Voxels } from '../segmentation/ops'
import { brickKey } from './brick_cache'

/** How long a stroke stays after the first push at or after its version. */
export const SETTLED_MS = 10_000

interface Pending {
  id: string
  op: BrushOp
  factor: Vec3
  /** The bricks it still shows in (key → brick coordinates). */
  bricks: Map<string, Vec3>
  /** The version that holds it, once the server has taken it. */
  version: number | null
  /** When a push at or after its version first arrived. */
  coveredAt: number | null
}

interface Composed {
  base: Voxels
  data: Voxels
  /** Per stroke: how many of its points are painted into `data`. */
  painted: Map<string, number>
}

export class Preview {
  private strokes: Pending[] = []
  private readonly composed = new Map<string, Composed>()
  private readonly revisions = new Map<string, number>()
  /** Bricks some stroke shows in (key → how many). */
  private readonly touching = new Map<string, number>()

  get size(): number {
    return this.strokes.length
  }

  has(id: string): boolean {
    return this.strokes.some((s) => s.id === id)
  }

  /** A stroke (its op, at mag factors ``factor``) starts showing. */
  add(id: string, op: BrushOp, factor: Vec3): void {
    const stroke: Pending = {
      id,
      op: { ...op, points: [...op.points] },
      factor,
      bricks: new Map(),
      version: null,
      coveredAt: null,
    }
    this.strokes.push(stroke)
    this.reach(stroke, 0)
  }

  /** The stroke under way grew by ``points``. */
  extend(id: string, points: Vec3[]): void {
    const stroke = this.strokes.find((s) => s.id === id)
    if (!stroke || !points.length) return
    const from = stroke.op.points.length
    stroke.op.points.push(...points)
    if (stroke !== this.strokes[this.strokes.length - 1]) this.forget(stroke.bricks.keys()) // painted out of order: again
    this.reach(stroke, from)
  }

  /** Replace a stroke's points (the op as written: thinned). */
  settle(id: string, op: BrushOp): void {
    const stroke = this.strokes.find((s) => s.id === id)
    if (!stroke) return
    stroke.op = { ...op, points: [...op.points] }
  }

  /** The server took the stroke in ``version``. */
  setVersion(id: string, version: number): void {
    const stroke = this.strokes.find((s) => s.id === id)
    if (stroke) stroke.version = version
  }

  /** The stroke goes from every brick (undone, or refused). */
  remove(id: string): void {
    const stroke = this.strokes.find((s) => s.id === id)
    if (!stroke) return
    this.strokes = this.strokes.filter((s) => s !== stroke)
    for (const key of stroke.bricks.keys()) this.untouch(key)
    this.forget(stroke.bricks.keys())
  }

  /** Bricks ``keys`` arrived as of ``version``: strokes it holds leave them. */
  pushed(version: number, keys: Iterable<string>, now = Date.now()): void {
    for (const stroke of [...this.strokes]) {
      if (stroke.version === null || stroke.version > version) continue
      stroke.coveredAt ??= now
      if (now - stroke.coveredAt > SETTLED_MS) this.remove(stroke.id)
    }
    for (const key of keys) {
      if (!this.touching.has(key)) continue
      for (const stroke of this.strokes) {
        if (stroke.version === null || stroke.version > version || !stroke.bricks.has(key)) continue
        stroke.bricks.delete(key)
        this.untouch(key)
      }
      this.forget([key]) // composed again over the pushed voxels, with the strokes still pending
    }
    this.strokes = this.strokes.filter((s) => s.bricks.size > 0)
  }

  touches(key: string): boolean {
    return this.touching.has(key)
  }

  /** Changes whenever what ``key`` shows changes (views upload it again). */
  revision(key: string): number {
    return this.revisions.get(key) ?? 0
  }

  /** What brick ``key`` shows: ``base`` (the cached voxels) with the strokes over it. */
  compose(key: string, base: Voxels): Voxels {
    if (!this.touching.has(key)) return base
    let composed = this.composed.get(key)
    if (!composed || composed.base !== base) {
      composed = { base, data: base.slice(), painted: new Map() }
      this.composed.set(key, composed)
    }
    for (const stroke of this.strokes) {
      const brick = stroke.bricks.get(key)
      const done = composed.painted.get(stroke.id) ?? 0
      if (!brick || done >= stroke.op.points.length) continue
      paintBrush(stroke.op, stroke.factor, brick, composed.data, done)
      composed.painted.set(stroke.id, stroke.op.points.length)
    }
    return composed.data
  }

  /** Bricks the stroke reaches from point ``from`` on join its bricks; they change. */
  private reach(stroke: Pending, from: number): void {
    for (const brick of brushBricks(stroke.op, stroke.factor, from)) {
      const key = brickKey(stroke.op.mag, brick)
      if (!stroke.bricks.has(key)) {
        stroke.bricks.set(key, brick)
        this.touching.set(key, (this.touching.get(key) ?? 0) + 1)
      }
      this.bump(key)
    }
  }

  private untouch(key: string): void {
    const n = (this.touching.get(key) ?? 1) - 1
    if (n > 0) this.touching.set(key, n)
    else this.touching.delete(key)
  }

  private forget(keys: Iterable<string>): void {
    for (const key of [...keys]) {
      this.composed.delete(key)
      this.bump(key)
    }
  }

  private bump(key: string): void {
    this.revisions.set(key, (this.revisions.get(key) ?? 0) + 1)
  }
}
