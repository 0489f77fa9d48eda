// The annotation's volume layer on the page, and WEBKNOSSOS's volume tools
// over it (../shared/wk-habits.md, "Volume tools"): brush (B), eraser (E;
// Ctrl+Shift+drag with the brush), 2D fill (F), segment picker
// (Shift+click), new segment id (C), brush size (Shift+wheel, Shift+I/O),
// overwrite everything or only empty voxels (Ctrl+drag inverts it for one
// stroke). A stroke is one op written when the button is released
// (../tools/brush.ts); until the server pushes the bricks it painted, it
// shows as a preview (../volume/preview.ts). The segments tab lists the
// layer's segments (./segment_list.ts). The proofreading tool (Ctrl+K, O)
// and colouring by agglomerate are ./proofreading.ts's. Read-only pages
// get no tools.

import type { Api, Me } from '../api'
import { IdBlocks, unusedBlocks } from '../segmentation/ids'
import { paintable, type SegmentId, segmentId } from '../segmentation/segment_id'
import type { LayerEntry, SegmentationDoc } from '../segmentation/model'
import { type BoundingBox, dtypeMax, layerMags, MAX_RADIUS, magFactors, type Vec3 } from '../segmentation/ops'
import type { Connection } from '../sync/connection'
import { Stroke, type StrokeSettings, strokeKind } from '../tools/brush'
import { fillOp } from '../tools/fill'
import type { PlaneView, Scene } from '../view/plane'
import { type Mag, voxelAt } from '../volume/bricks'
import { type Layer, openVolumeLayer, segmentColour } from '../volume/layers'
import { Preview } from '../volume/preview'
import { renderSegmentList, segmentCss } from './segment_list'
import { ProofreadingView } from './proofreading'
import { clickKind } from '../tools/proofread'

export type Tool = 'skeleton' | 'brush' | 'erase' | 'fill' | 'proofread'
const TOOLS: Tool[] = ['skeleton', 'brush', 'erase', 'fill', 'proofread']
/** Ctrl+K, then a letter within this long, picks a tool (WEBKNOSSOS's chords). */
const CHORD_MS = 2000
const CHORD: Record<string, Tool> = { s: 'skeleton', b: 'brush', e: 'erase', f: 'fill', o: 'proofread' }

interface VolumeLayer {
  id: string
  entry: LayerEntry
  layer: Layer
  ids: IdBlocks
}

export interface VolumeToolsOptions {
  root: HTMLElement
  api: Api
  annotation: number
  me: Me
  seg: SegmentationDoc
  connection: Connection
  writable: boolean
  /** The dataset's segmentation layer: the fallback of a layer added here. */
  datasetSegmentation: Layer | null
  /** The dataset's bounding box (the union of its layers'). */
  datasetBox: BoundingBox | null
  /** The page shows the live documents (not an old version). */
  live: () => boolean
  classic: () => boolean
  redraw: () => void
  centreOn: (p: Vec3) => void
}

export class VolumeTools {
  tool: Tool = 'skeleton'
  radius = Number(localStorage.getItem('collab.brushRadius') ?? 10) || 10
  mode: 'all' | 'empty' = 'all'
  /** The active segment id: what the brush and the fill paint. */
  active: number | null = null
  volume: VolumeLayer | null = null
  readonly preview = new Preview()
  private stroke: { stroke: Stroke; id: string; plane: PlaneView } | null = null
  private hover: { plane: string; at: [number, number] } | null = null
  private chord = 0
  /** Colours of segments that are hidden (0) or recoloured, as RGBA words. */
  private looks = new Map<SegmentId, number>()
  private lookVersion = 0
  private listShown = ''
  /** Changes with every change of segments or groups (the list is rebuilt then). */
  private listVersion = 0
  private note = ''
  private readonly seg: SegmentationDoc
  /** Colour by agglomerate, the proofreading tool, the connectome. */
  readonly proofreading: ProofreadingView

  constructor(private readonly o: VolumeToolsOptions) {
    this.seg = o.seg
    this.proofreading = new ProofreadingView({
      root: o.root,
      api: o.api,
      annotation: o.annotation,
      seg: o.seg,
      datasetSegmentation: o.datasetSegmentation,
      redraw: o.redraw,
      centreOn: o.centreOn,
    })
    this.seg.layers.observeDeep(() => this.syncLayer())
    this.seg.segments.observe(() => {
      this.rebuildLooks()
      this.listVersion += 1
      o.redraw()
    })
    this.seg.groups.observeDeep(() => {
      this.listVersion += 1
      o.redraw()
    })
    // An op that leaves the document (undone here or elsewhere) leaves the preview.
    this.seg.ops.observe((event) => {
      event.changes.keys.forEach((change, key) => {
        if (change.action === 'delete') this.preview.remove(key)
      })
      o.redraw()
    })
    o.connection.onChange(() => o.redraw())
    this.bindControls()
    this.syncLayer()
  }

  private el<T extends HTMLElement = HTMLElement>(name: string): T {
    return this.o.root.querySelector(`[data-testid="${name}"]`) as T
  }

  /** The page may paint now: a writer, on the live document, with a volume layer, not refused. */
  get editable(): boolean {
    const state = this.o.connection.state
    return this.o.writable && this.o.live() && this.volume !== null && !state.refused && !state.readOnly
  }

  /** A volume tool is in use (the mouse paints instead of placing nodes). */
  get painting(): boolean {
    return this.tool !== 'skeleton' && this.editable
  }

  /** The overlay the planes draw: the annotation's volume layer, each segment in its look. */
  overlay(alpha: number): Scene['segmentation'] {
    const volume = this.volume
    if (!volume) return null
    const looks = this.looks
    const colourOf = (id: number | bigint) => looks.get(segmentId(id)) ?? segmentColour(id)
    // With an active mapping each supervoxel in its agglomerate's look.
    const mapped = this.proofreading.overlay(colourOf, String(this.lookVersion))
    return {
      source: volume.layer.source,
      mags: volume.layer.mags,
      alpha,
      colour: mapped?.colour ?? colourOf,
      look: mapped?.look ?? String(this.lookVersion),
    }
  }

  /** The proofreading tool's active segment (a white crosshair). */
  marker(): Scene['marker'] {
    return this.proofreading.marker()
  }

  brushCursor(): Scene['brush'] {
    if (!this.painting || (this.tool !== 'brush' && this.tool !== 'erase') || !this.hover) return null
    return { plane: this.hover.plane, at: this.hover.at, radius: this.radius, erase: this.tool === 'erase' }
  }

  // -- the layer ---------------------------------------------------------------

  private syncLayer(): void {
    const id = this.seg.firstLayer()
    const entry = id ? this.seg.layer(id) : null
    if (id && entry && this.volume?.id === id) {
      this.volume.entry = entry
      this.proofreading.sync(this.volume)
      return
    }
    this.volume?.layer.source.close()
    this.volume = null
    if (id && entry) {
      const layer = openVolumeLayer(this.o.api, this.o.annotation, id, {
        name: entry.name,
        category: 'segmentation',
        dtype: entry.dtype,
        boundingBox: entry.boundingBox ?? { topLeft: [0, 0, 0], size: [0, 0, 0] },
        mags: entry.mags,
      })
      layer.source.preview = this.preview
      layer.source.onBrick = () => this.o.redraw()
      const ids = new IdBlocks(async (count) => {
        const block = await this.o.api.call<{ first: number; count: number }>(
          'POST',
          `/api/annotations/${this.o.annotation}/segment-ids`,
          { layer: id, count },
        )
        return { first: block.first, count: block.count }
      })
      ids.onChange = () => this.o.redraw()
      this.volume = { id, entry, layer, ids }
      this.active = null
      this.seedIds()
      this.rebuildLooks()
    }
    this.proofreading.sync(this.volume)
    this.o.redraw()
  }

  /** What this user's earlier blocks left unused (a page opened again, or offline). */
  private seedIds(): void {
    const volume = this.volume
    const user = this.o.me.id
    if (!volume || user === undefined) return
    const used = new Set(this.seg.segmentsOf(volume.id).flatMap(([id]) => (paintable(id) ? [id] : [])))
    for (const op of this.seg.ops.values()) if (op?.layer === volume.id && op.segment > 0) used.add(op.segment)
    volume.ids.seed(unusedBlocks(this.seg.idBlocks.entries(), volume.id, user, used))
  }

  private rebuildLooks(): void {
    this.looks = new Map()
    if (this.volume) {
      for (const [id, value] of this.seg.segmentsOf(this.volume.id)) {
        if (value.isVisible === false) this.looks.set(id, 0)
        else if (Array.isArray(value.color)) {
          const [r, g, b] = value.color.map((c) => Math.max(0, Math.min(255, Math.round(Number(c) * 255))))
          this.looks.set(id, (0xff << 24) | (b << 16) | (g << 8) | r)
        }
      }
    }
    this.lookVersion += 1
  }

  /** WEBKNOSSOS's "Add volume layer": the dataset's segmentation as fallback. */
  addLayer(): void {
    const fallback = this.o.datasetSegmentation
    if (!fallback || this.seg.firstLayer() || !this.o.writable) return
    const volume = (name: string) => (magFactors(name) ?? [Infinity, 1, 1]).reduce((a, b) => a * b, 1)
    const mags = layerMags([...fallback.info.mags].sort((a, b) => volume(a) - volume(b)))
    if (!mags.length) return
    this.seg.addLayer({
      name: 'Volume',
      dtype: ['uint8', 'uint16', 'uint32', 'uint64'].includes(fallback.info.dtype) ? fallback.info.dtype : 'uint32',
      fallback: fallback.info.name,
      mags,
      boundingBox: this.o.datasetBox ?? (fallback.info.boundingBox as BoundingBox),
    })
  }

  // -- segment ids -------------------------------------------------------------

  /** The active segment, taking a new id when there is none (null: none in hand yet). */
  private activeSegment(): number | null {
    if (this.active === null) this.newSegment()
    return this.active
  }

  /** WEBKNOSSOS's C: a new segment id becomes the active one. */
  newSegment(): void {
    const volume = this.volume
    if (!volume) return
    const id = volume.ids.take()
    if (id !== null) {
      this.active = id
      this.note = ''
    } else {
      this.note = 'getting segment ids…'
      void volume.ids.next().then(
        (next) => {
          if (this.volume === volume) this.active = next
          this.note = ''
          this.o.redraw()
        },
        (error: unknown) => {
          this.note = `no segment ids: ${error instanceof Error ? error.message : error}`
          this.o.redraw()
        },
      )
    }
    this.o.redraw()
  }

  // -- the mouse and keys --------------------------------------------------------

  private magFor(plane: PlaneView): Mag {
    const layer = (this.volume as VolumeLayer).layer
    return layer.mags.find((m) => m.name === plane.levelMag?.name) ?? layer.mags[0]
  }

  /** A press in a plane; true when a volume tool took it. */
  mousedown(plane: PlaneView, event: MouseEvent, scene: Scene): boolean {
    if (!this.painting || !this.volume) return false
    if (this.tool === 'proofread') {
      if (event.button !== 0) return false
      // Left click picks, Shift+click merges, Ctrl+click splits (../tools/proofread.ts).
      const p = plane.toVoxel(event.offsetX, event.offsetY, scene)
      this.proofreading.click(clickKind(event), voxelAt(this.volume.layer.source, this.magFor(plane), p), p)
      return true
    }
    // Classic controls: a right drag erases (with the brush or the eraser).
    const classicErase = this.o.classic() && event.button === 2 && this.tool !== 'fill'
    if (event.button !== 0 && !classicErase) return false
    const p = plane.toVoxel(event.offsetX, event.offsetY, scene)
    const volume = this.volume
    if (event.button === 0 && event.shiftKey && !event.ctrlKey && !event.metaKey) {
      // The picker: the segment under the cursor becomes the active one.
      const value = voxelAt(volume.layer.source, this.magFor(plane), p)
      if (value && paintable(value)) {
        this.active = value
        this.note = ''
      } else if (value) this.note = `segment ${value} is above 2^53 − 1: shown, but ops cannot paint it`
      this.o.redraw()
      return true
    }
    const mag = this.magFor(plane)
    const base = {
      layer: volume.id,
      author: this.o.me.id ?? null,
      plane: plane.spec.name,
      mag: { name: mag.name, factor: mag.factor },
      box: volume.entry.boundingBox,
    }
    if (this.tool === 'fill') {
      const segment = this.activeSegment()
      if (segment === null) return true
      const op = fillOp({ ...base, segment }, p, Date.now())
      if (op) this.seg.write(op, op.seed)
      else this.note = 'outside the volume layer'
      this.o.redraw()
      return true
    }
    const kind = classicErase
      ? { erase: true, mode: 'all' as const }
      : strokeKind(this.tool === 'erase' ? 'erase' : 'brush', this.mode, {
          ctrl: event.ctrlKey || event.metaKey,
          shift: event.shiftKey,
        })
    let segment = 0
    if (!kind.erase) {
      const active = this.activeSegment()
      if (active === null) return true
      segment = Math.min(active, dtypeMax(volume.entry.dtype))
    }
    const settings: StrokeSettings = { ...base, radius: this.radius, segment, ...kind }
    const stroke = new Stroke(settings, p)
    const id = this.seg.newId()
    this.preview.add(id, stroke.draft(Date.now()), mag.factor)
    this.stroke = { stroke, id, plane }
    this.o.redraw()
    return true
  }

  mousemove(plane: PlaneView, event: MouseEvent, scene: Scene): void {
    const hovered = this.hover?.plane
    this.hover = { plane: plane.spec.name, at: [event.offsetX, event.offsetY] }
    const stroke = this.stroke
    if (stroke && stroke.plane === plane) {
      const p = plane.toVoxel(event.offsetX, event.offsetY, scene)
      const added = stroke.stroke.add(p)
      if (added === null) {
        // Too long for one op: this one is written, a next one goes on from its end.
        const settings = stroke.stroke.settings
        const from = stroke.stroke.last
        this.mouseup()
        const next = new Stroke(settings, from)
        next.add(p)
        const id = this.seg.newId()
        this.preview.add(id, next.draft(Date.now()), settings.mag.factor)
        this.stroke = { stroke: next, id, plane }
      } else if (added.length) this.preview.extend(stroke.id, added)
    }
    if (this.painting && (this.tool === 'brush' || this.tool === 'erase' || hovered !== plane.spec.name)) this.o.redraw()
  }

  mouseleave(plane: PlaneView): void {
    if (this.hover?.plane === plane.spec.name) this.hover = null
    this.o.redraw()
  }

  /** The button was released: the stroke becomes one op (one undo step). */
  mouseup(): void {
    const current = this.stroke
    if (!current) return
    this.stroke = null
    const op = current.stroke.finish(Date.now())
    this.preview.settle(current.id, op)
    this.seg.write(op, op.erase ? null : op.points[0], current.id)
    const change = this.o.connection.changeCount
    void this.o.connection.versionHolding(change).then((version) => this.preview.setVersion(current.id, version))
    this.o.redraw()
  }

  /** Shift+wheel: the brush size; true when taken. */
  wheel(event: WheelEvent): boolean {
    if (!this.painting || !event.shiftKey || (this.tool !== 'brush' && this.tool !== 'erase')) return false
    const delta = event.deltaY || event.deltaX
    this.resize(delta < 0 ? 1.15 : 1 / 1.15)
    return true
  }

  private resize(factor: number): void {
    const next = factor > 1 ? Math.max(this.radius + 1, this.radius * factor) : Math.min(this.radius - 1, this.radius * factor)
    this.radius = Math.round(Math.min(MAX_RADIUS, Math.max(1, next)))
    localStorage.setItem('collab.brushRadius', String(this.radius))
    this.o.redraw()
  }

  setTool(tool: Tool): void {
    this.tool = tool
    if (tool !== 'skeleton' && tool !== 'proofread' && this.volume) void this.volume.ids.refill()
    this.o.redraw()
  }

  /** A key in a plane; true when the volume tools took it. */
  key(event: KeyboardEvent): boolean {
    if (!this.o.writable || !this.o.live() || !this.volume) return false
    const key = event.key.toLowerCase()
    const ctrl = event.ctrlKey || event.metaKey
    if (ctrl && key === 'k') {
      this.chord = performance.now()
      event.preventDefault()
      return true
    }
    if (this.chord && performance.now() - this.chord < CHORD_MS && !ctrl && CHORD[key]) {
      this.chord = 0
      this.setTool(CHORD[key])
      return true
    }
    this.chord = 0
    if (ctrl || event.altKey) return false
    if (key === 'w') {
      const step = event.shiftKey ? TOOLS.length - 1 : 1
      this.setTool(TOOLS[(TOOLS.indexOf(this.tool) + step) % TOOLS.length])
      return true
    }
    if (key === 'e' && !event.shiftKey) {
      this.setTool('erase')
      return true
    }
    if (this.tool === 'skeleton') return false // B, F, C keep their skeleton meanings
    if (key === 'escape' && this.tool === 'proofread' && this.proofreading.tool.active) {
      this.proofreading.tool.clear()
      return true
    }
    if (key === 'escape' && this.stroke) {
      this.preview.remove(this.stroke.id)
      this.stroke = null
      this.o.redraw()
      return true
    }
    if (event.shiftKey && (key === 'i' || key === 'o') && this.tool !== 'fill') {
      this.resize(key === 'i' ? 1.15 : 1 / 1.15)
      return true
    }
    if (event.shiftKey) return false
    if (key === 'b') this.setTool('brush')
    else if (key === 'f') this.setTool('fill')
    else if (key === 'c') this.newSegment()
    else return false
    return true
  }

  // -- the controls ----------------------------------------------------------------

  private bindControls(): void {
    for (const tool of TOOLS) this.el(`tool-${tool}`).addEventListener('click', () => this.setTool(tool))
    const size = this.el<HTMLInputElement>('brush-size')
    size.addEventListener('input', () => {
      this.radius = Number(size.value)
      localStorage.setItem('collab.brushRadius', size.value)
      this.o.redraw()
    })
    const mode = this.el<HTMLSelectElement>('overwrite')
    mode.addEventListener('change', () => {
      this.mode = mode.value === 'empty' ? 'empty' : 'all'
      this.o.redraw()
    })
    this.el('new-segment').addEventListener('click', () => this.newSegment())
    this.el('add-volume-layer').addEventListener('click', () => this.addLayer())
    const tabs = ['trees', 'segments', 'connectome'] as const
    for (const tab of tabs) {
      this.el(`tab-${tab}`).addEventListener('click', () => {
        for (const other of tabs) {
          this.el(`tab-${other}`).classList.toggle('active', other === tab)
          this.el(`${other}-panel`).hidden = other !== tab
        }
      })
    }
  }

  /** Bring the toolbar, the layer line and the segments tab up to date (each frame). */
  render(): void {
    const volume = this.volume
    const synced = this.o.connection.state.synced
    this.el('add-volume-layer-row').hidden = !(
      this.o.writable && synced && !volume && this.o.datasetSegmentation && this.o.live()
    )
    this.el('volume-layer-row').hidden = !volume
    if (volume) this.el('volume-layer').textContent = `${volume.entry.name} (${volume.entry.dtype}, over ${volume.entry.fallback ?? 'nothing'})`
    const tools = this.el('volume-tools')
    const writer = this.o.writable && !this.o.connection.state.readOnly
    tools.hidden = !(writer && volume)
    if (writer && volume) {
      for (const tool of TOOLS) this.el(`tool-${tool}`).classList.toggle('pressed', tool === this.tool)
      tools.dataset.tool = this.tool
      const size = this.el<HTMLInputElement>('brush-size')
      if (document.activeElement !== size) size.value = String(this.radius)
      this.el('brush-size-value').textContent = `${this.radius} vx`
      this.el<HTMLSelectElement>('overwrite').value = this.mode
      const active = this.el('active-segment')
      active.textContent = this.active === null ? 'none' : String(this.active)
      active.dataset.segment = this.active === null ? '' : String(this.active)
      const swatch = this.el('active-segment-swatch')
      swatch.style.background = this.active === null ? 'transparent' : segmentCss(this.active, this.seg.segment(volume.id, this.active))
      this.el('tool-note').textContent = this.note || (volume.ids.error && volume.ids.available === 0 ? `segment ids: ${volume.ids.error}` : '')
    }
    this.el('paint-controls').hidden = this.tool === 'proofread'
    this.proofreading.render(volume, writer && this.o.live(), writer && volume !== null && this.tool === 'proofread')
    this.showSegments()
  }

  private showSegments(): void {
    const list = this.el('segments')
    const volume = this.volume
    const editable = this.o.writable && this.o.live()
    const shown = volume ? `${volume.id}/${this.active}/${editable}/${this.listVersion}` : ''
    if (shown === this.listShown) return
    this.listShown = shown
    if (!volume) {
      list.replaceChildren()
      return
    }
    renderSegmentList(list, this.seg, {
      layer: volume.id,
      active: this.active,
      editable,
      activate: (id) => {
        this.active = id
        this.o.redraw()
      },
      jump: (anchor) => this.o.centreOn(anchor),
    })
  }
}
