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
  private shown = ''
  private shownView = ''
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

  /** Draw if anything it shows changed. An edit is drawn 300 ms later, off
   *  the frame that shows it in the planes (this view draws every node: a
   *  click on a 100,000-node skeleton must not wait for it). */
  draw(skeleton: SkeletonDoc, centre: Vec3, extent: Vec3, now = false): void {
    const view = JSON.stringify([this.yaw, this.pitch, centre, extent, skeleton.doc.clientID])
    const key = `${view}/${skeleton.index.version}`
    if (key === this.shown) return
    if (view === this.shownView && !now) {
      this.later ||= window.setTimeout(() => {
        this.later = 0
        this.draw(skeleton, centre, extent, true)
      }, MIN_RENDER_MS)
      return
    }
    this.shown = key
    this.shownView = view
    this.render(skeleton, centre, extent)
  }

  private render(skeleton: SkeletonDoc, centre: Vec3, extent: Vec3): void {
    const ctx = this.ctx
    const index = skeleton.index
    const { width, height } = this.canvas
    ctx.fillStyle = '#161616'
    ctx.fillRect(0, 0, width, height)
    // Fit the skeleton's bounds (and the view) into the canvas.
    let lo: Vec3 = [centre[0] - extent[0], centre[1] - extent[1], centre[2] - extent[2]]
    let hi: Vec3 = [centre[0] + extent[0], centre[1] + extent[1], centre[2] + extent[2]]
    for (const node of index.nodes.values()) {
      const p = node.position
      for (let i = 0; i < 3; i++) {
        if (p[i] < lo[i]) lo[i] = p[i]
        if (p[i] > hi[i]) hi[i] = p[i]
      }
    }
    const mid = lo.map((v, i) => (v + hi[i]) / 2)
    const span = Math.max(hi[0] - lo[0], hi[1] - lo[1], hi[2] - lo[2], 1)
    const scale = (0.8 * Math.min(width, height)) / span
    const [cy, sy, cp, sp] = [Math.cos(this.yaw), Math.sin(this.yaw), Math.cos(this.pitch), Math.sin(this.pitch)]
    const project = (p: Vec3 | number[]): [number, number] => {
      const x = p[0] - mid[0]
      const y = p[1] - mid[1]
      const z = p[2] - mid[2]
      const rx = cy * x - sy * z
      const rz = sy * x + cy * z
      const ry = cp * y - sp * rz
      return [width / 2 + rx * scale, height / 2 + ry * scale]
    }
    // The three planes through the centre, as outlines.
    const planes: [number, number][] = [[0, 1], [1, 2], [0, 2]]
    ctx.strokeStyle = '#555'
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
    ctx.fillStyle = '#aaa'
    ctx.fillText('3D', 6, 14)
  }
}
