// One orthogonal plane of the volume (WEBKNOSSOS's XY, YZ and XZ
// viewports): the EM slice through the view centre from the bricks at the
// mag the zoom asks for, the skeleton's nodes near the plane, and others'
// cursors. Pure drawing on a 2D canvas; the page owns the state.

import type { NodeValue, SkeletonDoc, Vec3 } from '../skeleton/model'
import { BRICK, type BrickData, type BrickSource, type Mag } from '../volume/bricks'
import { segmentColour } from '../volume/layers'

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
  /** The segmentation drawn over the EM, each id in its hashed colour. */
  segmentation: { source: BrickSource; mags: Mag[]; alpha: number } | null
}

export interface Contrast {
  brightness: number // added, -1 … 1 of the range
  contrast: number // multiplied, around the middle grey
}

/** Nodes within this many slices of a plane are drawn in it. */
export const SLAB = 5
/** Brick slices kept drawn per plane (32×32 canvases, 4 KiB of pixels each). */
const MAX_SLICES = 4096

export class PlaneView {
  private readonly ctx: CanvasRenderingContext2D
  /** Every brick in view was loaded at the last draw. */
  complete = true
  /** Each brick's slice, drawn once per look (slice, contrast, overlay) and
   *  reused while the view pans or the skeleton changes: a pan renders only
   *  the bricks that came into view. Least recently used out. */
  private readonly slices = new Map<string, HTMLCanvasElement>()

  constructor(
    readonly spec: PlaneSpec,
    readonly canvas: HTMLCanvasElement,
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
    ctx.fillStyle = '#111'
    ctx.fillRect(0, 0, this.canvas.width, this.canvas.height)
    this.complete = this.drawVolume(scene)
    this.drawSkeleton(scene)
    this.drawPeers(scene)
    ctx.fillStyle = '#aaa'
    ctx.fillText(this.spec.name.toUpperCase(), 6, 14)
  }

  private drawVolume(scene: Scene): boolean {
    const { u, v, w } = this.spec
    const volume = scene.volume
    const seg = scene.segmentation
    const base = volume ?? seg
    if (!base) return true
    // One grid for both layers: the mag the zoom asks for among the EM's.
    const wanted = 1 / scene.zoom
    const mag = base.mags.reduce(
      (best, m) => (m.factor[u] <= Math.max(1, wanted) && m.factor[u] > best.factor[u] ? m : best),
      base.mags[0],
    )
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
    volume?.source.want(mag, bricks, near)
    if (seg && segMag) seg.source.want(segMag, bricks, near)
    if (scene.heading.some((d) => d !== 0)) {
      const ahead = bricks.map((b) => b.map((c, axis) => c + scene.heading[axis]) as [number, number, number])
      const fresh = ahead.filter((b) => b.every((c) => c >= 0))
      volume?.source.want(mag, fresh, near, 1e6)
      if (seg && segMag) seg.source.want(segMag, fresh, near, 1e6)
    }
    // Voxel (i, j, k) of a brick is at i + 32 (j + 32 k): steps along u and v.
    const step = [1, BRICK, BRICK * BRICK]
    const du = step[u]
    const dv = step[v]
    const first = k * step[w]
    const contrast = volume?.contrast ?? { brightness: 0, contrast: 1 }
    const lut = greyTable(contrast)
    const alpha = Math.round((seg?.alpha ?? 0) * 256)
    const look = `${this.spec.name}/${mag.name}/${k}/${contrast.brightness}/${contrast.contrast}/${segMag ? `${alpha}/${seg?.source.epoch}` : '-'}`
    const width = BRICK * f[u] * scene.zoom
    const height = BRICK * f[v] * scene.zoom
    this.ctx.imageSmoothingEnabled = false
    let complete = true
    for (const b of bricks) {
      const key = `${look}/${b[0]},${b[1]},${b[2]}`
      let slice = this.slices.get(key)
      if (slice) {
        this.slices.delete(key) // most recently used: to the end
      } else {
        const grey = volume ? volume.source.get(mag, b) : null
        const ids: BrickData | undefined = seg && segMag ? seg.source.get(segMag, b) : null
        if (grey === undefined || ids === undefined) {
          complete = false
          continue
        }
        slice = document.createElement('canvas')
        slice.width = slice.height = BRICK
        const sliceCtx = slice.getContext('2d') as CanvasRenderingContext2D
        const image = sliceCtx.createImageData(BRICK, BRICK)
        const pixels = new Uint32Array(image.data.buffer)
        for (let j = 0; j < BRICK; j++) {
          let at = first + j * dv
          for (let i = 0; i < BRICK; i++, at += du) {
            let pixel = grey ? lut[grey[at] & 0xff] : 0xff000000
            const id = ids ? ids[at] : 0
            if (id && alpha) pixel = blend(pixel, segmentColour(id), alpha)
            pixels[j * BRICK + i] = pixel
          }
        }
        sliceCtx.putImageData(image, 0, 0)
      }
      this.slices.set(key, slice)
      const corner: Vec3 = [0, 0, 0]
      corner[u] = b[u] * BRICK * f[u]
      corner[v] = b[v] * BRICK * f[v]
      const [sx, sy] = this.toScreen(corner, scene)
      this.ctx.drawImage(slice, sx, sy, width, height)
    }
    while (this.slices.size > MAX_SLICES) this.slices.delete(this.slices.keys().next().value as string)
    return complete
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

/** ``over`` on ``under`` with ``alpha`` of 256 (little-endian RGBA words). */
function blend(under: number, over: number, alpha: number): number {
  const keep = 256 - alpha
  const r = ((under & 0xff) * keep + (over & 0xff) * alpha) >> 8
  const g = (((under >> 8) & 0xff) * keep + ((over >> 8) & 0xff) * alpha) >> 8
  const b = (((under >> 16) & 0xff) * keep + ((over >> 16) & 0xff) * alpha) >> 8
  return (0xff000000 | (b << 16) | (g << 8) | r) >>> 0
}

const tables = new Map<string, Uint32Array>()

/** Grey value → RGBA pixel, with brightness and contrast applied (cached). */
function greyTable({ brightness, contrast }: Contrast): Uint32Array {
  const key = `${brightness}/${contrast}`
  let table = tables.get(key)
  if (!table) {
    table = new Uint32Array(256)
    for (let g = 0; g < 256; g++) {
      const value = Math.round((g - 127.5) * contrast + 127.5 + brightness * 255)
      const c = Math.max(0, Math.min(255, value))
      table[g] = 0xff000000 | (c << 16) | (c << 8) | c
    }
    if (tables.size > 64) tables.clear()
    tables.set(key, table)
  }
  return table
}
