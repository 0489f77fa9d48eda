// The 3D viewport: the whole skeleton and the three planes' positions, as
// an orthographic projection the user turns by dragging (a 2D canvas; the
// WebGL renderer with the planes' textures is a later step).

import type { SkeletonDoc, Vec3 } from '../skeleton/model'

/** A changed skeleton re-renders the 3D view at most this often (it draws every node). */
const MIN_RENDER_MS = 300

export class Overview {
  private readonly ctx: CanvasRenderingContext2D
  yaw = -0.6
  pitch = 0.5
  private later = 0

  constructor(readonly canvas: HTMLCanvasElement) {
    this.ctx = canvas.getContext('2d') as CanvasRenderingContext2D
    let last: [number, number] | null = null
    canvas.addEventListener('mousedown', (e) => (last = [e.offsetX, e.offsetY]))
    window.addEventListener('mouseup', () => (last = null))
    canvas.addEventListener('mousemove', (e) => {
      if (!last) return
      this.yaw += (e.offsetX - last[0]) * 0.01
      this.pitch = Math.max(-1.5, Math.min(1.5, this.pitch + (e.offsetY - last[1]) * 0.01))
      last = [e.offsetX, e.offsetY]
      this.onTurn()
    })
  }

  onTurn: () => void = () => undefined

  /** The box the projection fits (voxels): the skeleton's bounds and the
   *  view's, with a margin; refitted only when the view leaves it, so a pan
   *  moves the planes' outlines over the same skeleton picture. */
  private fit: { lo: Vec3; hi: Vec3 } | null = null
  /** The skeleton, projected, on a canvas of its own: redrawn when the
   *  skeleton, the turn or the fit changes, never for a pan. */
  private readonly layer = document.createElement('canvas')
  private layerKey = ''
  private composed = ''
  private bounds: { version: number; lo: Vec3; hi: Vec3 } | null = null

  /** Draw if anything it shows changed. An edit is drawn 300 ms later, off
   *  the frame that shows it in the planes (this view draws every node: a
   *  click on a 100,000-node skeleton must not wait for it); a pan redraws
   *  only the planes' outlines over the kept picture of the skeleton (a pan
   *  over 100,000 nodes spent ~2 s of every 3 s redrawing them). */
  draw(skeleton: SkeletonDoc, centre: Vec3, extent: Vec3, now = false): void {
    const viewLo: Vec3 = [centre[0] - extent[0], centre[1] - extent[1], centre[2] - extent[2]]
    const viewHi: Vec3 = [centre[0] + extent[0], centre[1] + extent[1], centre[2] + extent[2]]
    const index = skeleton.index
    const turn = `${this.yaw}/${this.pitch}/${skeleton.doc.clientID}`
    if (!this.fit || viewLo.some((v, i) => v < this.fit!.lo[i] || viewHi[i] > this.fit!.hi[i])) {
      const b = this.skeletonBounds(skeleton)
      const lo = viewLo.map((v, i) => Math.min(v, b.lo[i])) as Vec3
      const hi = viewHi.map((v, i) => Math.max(v, b.hi[i])) as Vec3
      const margin = lo.map((v, i) => (hi[i] - v) * 0.25)
      this.fit = { lo: lo.map((v, i) => v - margin[i]) as Vec3, hi: hi.map((v, i) => v + margin[i]) as Vec3 }
    }
    const fitKey = `${turn}/${this.fit.lo}/${this.fit.hi}`
    const layerKey = `${fitKey}/${index.version}`
    if (layerKey !== this.layerKey) {
      const onlyEdited = this.layerKey.startsWith(`${fitKey}/`)
      if (onlyEdited && !now) {
        this.later ||= window.setTimeout(() => {
          this.later = 0
          this.draw(skeleton, centre, extent, true)
        }, MIN_RENDER_MS)
      } else {
        this.renderSkeleton(skeleton)
        this.layerKey = layerKey
      }
    }
    const composed = `${this.layerKey}/${centre}/${extent}`
    if (composed === this.composed) return
    this.composed = composed
    this.compose(centre, extent)
  }

  private skeletonBounds(skeleton: SkeletonDoc): { lo: Vec3; hi: Vec3 } {
    const index = skeleton.index
    if (this.bounds?.version === index.version) return this.bounds
    const lo: Vec3 = [Infinity, Infinity, Infinity]
    const hi: Vec3 = [-Infinity, -Infinity, -Infinity]
    for (const node of index.nodes.values()) {
      const p = node.position
      for (let i = 0; i < 3; i++) {
        if (p[i] < lo[i]) lo[i] = p[i]
        if (p[i] > hi[i]) hi[i] = p[i]
      }
    }
    this.bounds = { version: index.version, lo, hi }
    return this.bounds
  }

  private projection(): (p: Vec3 | number[]) => [number, number] {
    const { width, height } = this.canvas
    const fit = this.fit as { lo: Vec3; hi: Vec3 }
    const mid = fit.lo.map((v, i) => (v + fit.hi[i]) / 2)
    const span = Math.max(fit.hi[0] - fit.lo[0], fit.hi[1] - fit.lo[1], fit.hi[2] - fit.lo[2], 1)
    const scale = Math.min(width, height) / span
    const [cy, sy, cp, sp] = [Math.cos(this.yaw), Math.sin(this.yaw), Math.cos(this.pitch), Math.sin(this.pitch)]
    return (p) => {
      const x = p[0] - mid[0]
      const y = p[1] - mid[1]
      const z = p[2] - mid[2]
      const rx = cy * x - sy * z
      const rz = sy * x + cy * z
      const ry = cp * y - sp * rz
      return [width / 2 + rx * scale, height / 2 + ry * scale]
    }
  }

  private renderSkeleton(skeleton: SkeletonDoc): void {
    const { width, height } = this.canvas
    this.layer.width = width
    this.layer.height = height
    const ctx = this.layer.getContext('2d') as CanvasRenderingContext2D
    const index = skeleton.index
    const project = this.projection()
    ctx.clearRect(0, 0, width, height)
    ctx.lineWidth = 1
    for (const [a, others] of index.neighbours) {
      const na = index.nodes.get(a)
      if (!na) continue
      ctx.strokeStyle = skeleton.treeColor(na.treeId)
      ctx.beginPath()
      for (const b of others) {
        const nb = b > a ? index.nodes.get(b) : undefined
        if (!nb) continue
        ctx.moveTo(...project(na.position))
        ctx.lineTo(...project(nb.position))
      }
      ctx.stroke()
    }
    for (const node of index.nodes.values()) {
      const [x, y] = project(node.position)
      ctx.fillStyle = skeleton.treeColor(node.treeId)
      ctx.fillRect(x - 1.5, y - 1.5, 3, 3)
    }
  }

  private compose(centre: Vec3, extent: Vec3): void {
    const ctx = this.ctx
    const { width, height } = this.canvas
    ctx.fillStyle = '#161616'
    ctx.fillRect(0, 0, width, height)
    ctx.drawImage(this.layer, 0, 0)
    // The three planes through the centre, as outlines.
    const project = this.projection()
    const planes: [number, number][] = [[0, 1], [1, 2], [0, 2]]
    ctx.strokeStyle = '#555'
    ctx.lineWidth = 1
    for (const [a, b] of planes) {
      const corner = (da: number, db: number): Vec3 => {
        const p: Vec3 = [...centre]
        p[a] += da * extent[a]
        p[b] += db * extent[b]
        return p
      }
      const points = [corner(-1, -1), corner(1, -1), corner(1, 1), corner(-1, 1)].map(project)
      ctx.beginPath()
      ctx.moveTo(...points[0])
      for (const p of points.slice(1)) ctx.lineTo(...p)
      ctx.closePath()
      ctx.stroke()
    }
    ctx.fillStyle = '#aaa'
    ctx.fillText('3D', 6, 14)
  }
}
