// One orthogonal plane of the volume (WEBKNOSSOS's XY, YZ and XZ
// viewports): the EM slice through the view centre from the bricks at the
// mag the zoom asks for, the skeleton's nodes near the plane, and others'
// cursors. The volume in WebGL2 (./volume_gl.ts), the skeleton and cursors
// on a 2D canvas over it; the page owns the state.

import type { NodeValue, SkeletonDoc, Vec3 } from '../skeleton/model'
import { BRICK, type BrickData, type BrickSource, type Mag } from '../volume/bricks'
import { segmentColour } from '../volume/layers'
import type { LevelView, PlaneVolume, SlotGrid } from './volume_gl'

export type Axis = 0 | 1 | 2

export interface PlaneSpec {
  name: 'xy' | 'yz' | 'xz'
  u: Axis // screen right
  v: Axis // screen down
  w: Axis // through the screen: the slice
}

export const PLANES: PlaneSpec[] = [
  { name: 'xy', u: 0, v: 1, w: 2 },
  { name: 'yz', u: 2, v: 1, w: 0 },
  { name: 'xz', u: 0, v: 2, w: 1 },
]

export interface Peer {
  name: string
  color: string
  position: Vec3 | null
  activeNode: string | null
}

export interface Scene {
  centre: Vec3
  zoom: number // screen pixels per mag-1 voxel
  skeleton: SkeletonDoc
  activeNode: string | null
  peers: Peer[]
  volume: { source: BrickSource; mags: Mag[]; contrast: Contrast } | null
  /** The direction the view last moved in (-1, 0 or 1 per axis): bricks one
   *  step ahead are asked for after those in view (prefetch). */
  heading: Vec3
  /** The segmentation drawn over the EM: each id in ``colour(id)`` (RGBA
   *  word, 0: not drawn; a uint64 layer's ids are bigints), which changes
   *  only when ``look`` does. */
  segmentation: {
    source: BrickSource
    mags: Mag[]
    alpha: number
    colour: (id: number | bigint) => number
    look: string
  } | null
  /** The brush under the cursor: a circle of ``radius`` voxels (mag 1) in that plane. */
  brush: { plane: string; at: [number, number]; radius: number; erase: boolean } | null
  /** The proofreading tool's active segment: a white crosshair where it was picked. */
  marker: Vec3 | null
}

export interface Contrast {
  brightness: number // added, -1 … 1 of the range
  contrast: number // multiplied, around the middle grey
}

/** Nodes within this many slices of a plane are drawn in it. */
export const SLAB = 5

export class PlaneView {
  private readonly ctx: CanvasRenderingContext2D
  /** Every brick in view was loaded at the last draw (at the mag the zoom asks for). */
  complete = true
  /** Every pixel showed EM at the last draw, at that mag or the coarser one. */
  filled = true
  /** The mag the volume was drawn at, at full resolution, at the last draw (what tools paint at). */
  levelMag: Mag | null = null
  private readonly greyTexels = new Uint8Array(BRICK * BRICK)
  private readonly colourTexels = new Uint32Array(BRICK * BRICK)

  /** `gl`: this plane's part of the WebGL2 canvas under the plane's canvas
   *  (which takes the events and draws the skeleton); null without WebGL2. */
  constructor(
    readonly spec: PlaneSpec,
    readonly canvas: HTMLCanvasElement,
    private readonly gl: PlaneVolume | null,
  ) {
    this.ctx = canvas.getContext('2d') as CanvasRenderingContext2D
  }

  toScreen(p: Vec3, scene: Scene): [number, number] {
    const { u, v } = this.spec
    return [
      this.canvas.width / 2 + (p[u] - scene.centre[u]) * scene.zoom,
      this.canvas.height / 2 + (p[v] - scene.centre[v]) * scene.zoom,
    ]
  }

  toVoxel(x: number, y: number, scene: Scene): Vec3 {
    const { u, v, w } = this.spec
    const p: Vec3 = [0, 0, 0]
    p[u] = Math.floor(scene.centre[u] + (x - this.canvas.width / 2) / scene.zoom)
    p[v] = Math.floor(scene.centre[v] + (y - this.canvas.height / 2) / scene.zoom)
    p[w] = Math.round(scene.centre[w])
    return p
  }

  draw(scene: Scene): void {
    const ctx = this.ctx
    ctx.clearRect(0, 0, this.canvas.width, this.canvas.height)
    this.complete = this.drawVolume(scene)
    this.drawSkeleton(scene)
    this.drawPeers(scene)
    this.drawBrush(scene)
    this.drawMarker(scene)
    ctx.fillStyle = '#aaa'
    ctx.fillText(this.spec.name.toUpperCase(), 6, 14)
  }

  private drawVolume(scene: Scene): boolean {
    const { u } = this.spec
    const volume = scene.volume
    const seg = scene.segmentation
    const base = volume ?? seg
    const gl = this.gl
    if (!base || !gl) return true
    // One grid for both layers: the mag the zoom asks for among the EM's,
    // and under it one four times coarser (or the coarsest there is).
    const wanted = 1 / scene.zoom
    const mag = base.mags.reduce(
      (best, m) => (m.factor[u] <= Math.max(1, wanted) && m.factor[u] > best.factor[u] ? m : best),
      base.mags[0],
    )
    const coarseMag = base.mags.reduce(
      (best, m) => (m.factor[u] <= mag.factor[u] * 4 && m.factor[u] > best.factor[u] ? m : best),
      mag,
    )
    // The coarse level first: its few bricks are asked for before the fine ones.
    const coarse = coarseMag !== mag ? this.level(scene, coarseMag, gl.levels[1], false) : null
    const fine = this.level(scene, mag, gl.levels[0], true)
    gl.render(
      fine.view,
      coarse?.view ?? null,
      volume?.contrast ?? { brightness: 0, contrast: 1 },
      seg && seg.mags.some((m) => m.name === mag.name) ? seg.alpha : 0,
    )
    this.filled = fine.complete || (coarse?.complete ?? false)
    return fine.complete
  }

  /** Ask for one level's bricks in view, upload those that arrived, and say where they are. */
  private level(scene: Scene, mag: Mag, grid: SlotGrid, prefetch: boolean): { view: LevelView; complete: boolean } {
    const { u, v, w } = this.spec
    const volume = scene.volume
    const seg = scene.segmentation
    const f = mag.factor
    const halfU = this.canvas.width / 2 / scene.zoom
    const halfV = this.canvas.height / 2 / scene.zoom
    const bu0 = Math.floor((scene.centre[u] - halfU) / f[u] / BRICK)
    const bu1 = Math.floor((scene.centre[u] + halfU) / f[u] / BRICK)
    const bv0 = Math.floor((scene.centre[v] - halfV) / f[v] / BRICK)
    const bv1 = Math.floor((scene.centre[v] + halfV) / f[v] / BRICK)
    const sliceVoxel = Math.floor(scene.centre[w] / f[w])
    const bw = Math.floor(sliceVoxel / BRICK)
    const k = sliceVoxel - bw * BRICK
    const bricks: [number, number, number][] = []
    for (let bv = bv0; bv <= bv1; bv++) {
      for (let bu = bu0; bu <= bu1; bu++) {
        const b: [number, number, number] = [0, 0, 0]
        b[u] = bu
        b[v] = bv
        b[w] = bw
        if (b[0] >= 0 && b[1] >= 0 && b[2] >= 0) bricks.push(b)
      }
    }
    const near: [number, number, number] = [0, 0, 0]
    near[u] = Math.floor(scene.centre[u] / f[u] / BRICK)
    near[v] = Math.floor(scene.centre[v] / f[v] / BRICK)
    near[w] = bw
    // The same mag in the segmentation layer, if it has it (else no overlay here).
    const segMag = seg?.mags.find((m) => m.name === mag.name) ?? null
    if (prefetch) this.levelMag = mag
    volume?.source.want(mag, bricks, near)
    if (seg && segMag) seg.source.want(segMag, bricks, near)
    if (prefetch && scene.heading.some((d) => d !== 0)) {
      const ahead = bricks.map((b) => b.map((c, axis) => c + scene.heading[axis]) as [number, number, number])
      const fresh = ahead.filter((b) => b.every((c) => c >= 0))
      volume?.source.want(mag, fresh, near, 1e6)
      if (seg && segMag) seg.source.want(segMag, fresh, near, 1e6)
    }
    // Voxel (i, j, k) of a brick is at i + 32 (j + 32 k): steps along u and v.
    const stride = [1, BRICK, BRICK * BRICK]
    const du = stride[u]
    const dv = stride[v]
    const first = k * stride[w]
    const overlay = seg && segMag ? `${seg.source.serial}.${seg.source.epoch}/${seg.look}` : '-'
    const look = `${mag.name}/${k}/${overlay}`
    const colour = seg?.colour ?? segmentColour
    grid.reserve(bu1 - bu0 + 1, bv1 - bv0 + 1)
    grid.clearMarks()
    let complete = true
    for (const b of bricks) {
      const slot = grid.slotOf(b[u], b[v])
      // A brick pushed again, or under a stroke of this page's, is uploaded again.
      const revision = seg && segMag ? seg.source.revision(segMag, b) : ''
      const key = `${look}/${b[0]},${b[1]},${b[2]}/${revision}`
      if (!grid.holds(slot, key)) {
        const grey = volume ? volume.source.get(mag, b) : null
        const ids: BrickData | undefined = seg && segMag ? seg.source.get(segMag, b) : null
        if (grey === undefined || ids === undefined) {
          complete = false
          grid.drop(slot)
          continue
        }
        // Neighbouring voxels mostly hold one id: its colour is looked up once per run.
        let lastId: number | bigint = 0
        let lastColour = 0
        for (let j = 0; j < BRICK; j++) {
          let at = first + j * dv
          for (let i = 0; i < BRICK; i++, at += du) {
            if (grey) this.greyTexels[j * BRICK + i] = Number(grey[at]) & 0xff
            if (ids) {
              const id = ids[at]
              if (id !== lastId) {
                lastId = id
                lastColour = id ? colour(id) : 0
              }
              this.colourTexels[j * BRICK + i] = lastColour
            }
          }
        }
        // null: missing or failed (a missing tile; the coarser level shows through).
        grid.put(slot, key, { grey: grey ? this.greyTexels : null, colours: ids ? this.colourTexels : null })
      }
      grid.mark(slot)
    }
    const view: LevelView = {
      first: [(scene.centre[u] - halfU) / f[u] - bu0 * BRICK, (scene.centre[v] - halfV) / f[v] - bv0 * BRICK],
      step: [1 / (scene.zoom * f[u]), 1 / (scene.zoom * f[v])],
      brick0: [bu0, bv0],
    }
    return { view, complete }
  }

  private drawSkeleton(scene: Scene): void {
    const ctx = this.ctx
    const { w } = this.spec
    const sk = scene.skeleton
    const index = sk.index
    const near = new Set(index.near(w, scene.centre[w], SLAB))
    ctx.lineWidth = 1.5
    for (const id of near) {
      const node = index.nodes.get(id) as NodeValue
      if (!sk.isVisible(node.treeId)) continue
      const from = this.toScreen(node.position, scene)
      for (const other of index.neighbours.get(id) ?? []) {
        if (near.has(other) && other < id) continue // drawn from the other end
        const to = index.nodes.get(other)
        if (!to) continue
        ctx.strokeStyle = sk.treeColor(node.treeId)
        ctx.beginPath()
        ctx.moveTo(...from)
        ctx.lineTo(...this.toScreen(to.position, scene))
        ctx.stroke()
      }
    }
    for (const id of near) {
      const node = index.nodes.get(id) as NodeValue
      if (!sk.isVisible(node.treeId)) continue
      const [x, y] = this.toScreen(node.position, scene)
      ctx.fillStyle = sk.treeColor(node.treeId)
      ctx.beginPath()
      ctx.arc(x, y, id === scene.activeNode ? 6 : 4, 0, 2 * Math.PI)
      ctx.fill()
      if (id === scene.activeNode) {
        ctx.strokeStyle = '#fff'
        ctx.stroke()
      }
    }
  }

  private drawPeers(scene: Scene): void {
    const ctx = this.ctx
    const { w } = this.spec
    for (const peer of scene.peers) {
      // Their active node: ringed in their colour.
      const active = peer.activeNode ? scene.skeleton.index.nodes.get(peer.activeNode) : undefined
      if (active && Math.abs(active.position[w] - scene.centre[w]) <= SLAB) {
        const [x, y] = this.toScreen(active.position, scene)
        ctx.strokeStyle = peer.color
        ctx.lineWidth = 2
        ctx.beginPath()
        ctx.arc(x, y, 9, 0, 2 * Math.PI)
        ctx.stroke()
        ctx.lineWidth = 1.5
      }
      if (!peer.position) continue
      const [x, y] = this.toScreen(peer.position, scene)
      ctx.strokeStyle = peer.color
      ctx.beginPath()
      ctx.moveTo(x - 8, y)
      ctx.lineTo(x + 8, y)
      ctx.moveTo(x, y - 8)
      ctx.lineTo(x, y + 8)
      ctx.stroke()
      ctx.fillStyle = peer.color
      ctx.fillText(peer.name, x + 10, y - 10)
    }
  }

  private drawBrush(scene: Scene): void {
    const brush = scene.brush
    if (!brush || brush.plane !== this.spec.name) return
    const ctx = this.ctx
    ctx.strokeStyle = brush.erase ? '#f66' : '#fff'
    ctx.lineWidth = 1
    ctx.setLineDash(brush.erase ? [4, 3] : [])
    ctx.beginPath()
    ctx.arc(brush.at[0], brush.at[1], Math.max(1, brush.radius * scene.zoom), 0, 2 * Math.PI)
    ctx.stroke()
    ctx.setLineDash([])
  }

  private drawMarker(scene: Scene): void {
    const p = scene.marker
    if (!p || Math.abs(p[this.spec.w] - scene.centre[this.spec.w]) > SLAB) return
    const ctx = this.ctx
    const [x, y] = this.toScreen([p[0] + 0.5, p[1] + 0.5, p[2] + 0.5], scene)
    ctx.strokeStyle = '#fff'
    ctx.lineWidth = 1.5
    ctx.beginPath()
    for (const [dx, dy] of [[1, 0], [-1, 0], [0, 1], [0, -1]]) {
      ctx.moveTo(x + dx * 4, y + dy * 4)
      ctx.lineTo(x + dx * 12, y + dy * 12)
    }
    ctx.stroke()
  }

  /** The node nearest a screen point within 10 pixels, near this plane. */
  nearest(x: number, y: number, scene: Scene): string | null {
    let best: string | null = null
    let distance = 10
    const { w } = this.spec
    const index = scene.skeleton.index
    for (const id of index.near(w, scene.centre[w], SLAB)) {
      const node = index.nodes.get(id) as NodeValue
      const [sx, sy] = this.toScreen(node.position, scene)
      const d = Math.hypot(sx - x, sy - y)
      if (d <= distance) {
        best = id
        distance = d
      }
    }
    return best
  }
}
