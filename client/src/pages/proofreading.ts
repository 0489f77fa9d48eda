// Proofreading on the page: the volume layer coloured by agglomerate when
// its entry names an `activeMapping` (chosen in the layer's line among the
// fallback layer's mappings with a graph: a plain write into the layer's
// entry), the proofreading tool's clicks (../tools/proofread.ts), the
// active segment (its supervoxel, its agglomerate, a white crosshair where
// it was picked, its agglomerate's supervoxels highlighted), what the
// server answered as a toast, and the Connectome tab (./connectome.ts).
// Others' merges and splits arrive as MAPPED frames on the layer's brick
// socket and recolour what they change (../proofreading/agglomerates.ts).

import type { Api } from '../api'
import { AgglomerateMap, agglomerateColour } from '../proofreading/agglomerates'
import { ProofreadingApi, type Vec3 } from '../proofreading/requests'
import type { LayerEntry, SegmentationDoc } from '../segmentation/model'
import { type SegmentId, segmentId } from '../segmentation/segment_id'
import { type ClickKind, Proofreader, type Requests } from '../tools/proofread'
import type { Layer } from '../volume/layers'
import { ConnectomePanel } from './connectome'

/** How long a toast stays. */
const TOAST_MS = 6000

export interface ProofreadingOptions {
  root: HTMLElement
  api: Api
  annotation: number
  seg: SegmentationDoc
  /** The dataset's segmentation layer (its mappings with graphs are offered). */
  datasetSegmentation: Layer | null
  redraw: () => void
  centreOn: (p: Vec3) => void
}

interface Mapping {
  layer: string
  name: string
  agglomerates: AgglomerateMap
  api: ProofreadingApi
}

export class ProofreadingView {
  readonly tool: Proofreader
  mapping: Mapping | null = null
  private readonly connectome: ConnectomePanel
  private toastTimer = 0
  private toastShown: unknown = null
  /** Counts the messages shown (the toast's data-serial). */
  private toasts = 0
  private layerShown = ''

  constructor(private readonly o: ProofreadingOptions) {
    const requests: Requests = {
      merge: (a, b, positions) => this.requests().merge(a, b, positions),
      split: (sources, sinks, positions) => this.requests().split(sources, sinks, positions),
    }
    this.tool = new Proofreader(requests, { has: (key) => o.seg.ops.has(key), delete: (key) => o.seg.deleteOp(key) })
    this.tool.onChange = () => o.redraw()
    o.seg.ops.observe((event) => {
      event.changes.keys.forEach((change, key) => {
        if (change.action !== 'delete' && key.startsWith('pr-')) this.tool.seen(key)
      })
    })
    this.connectome = new ConnectomePanel(this.el('connectome'), o.centreOn)
    this.el<HTMLSelectElement>('active-mapping').addEventListener('change', (event) => {
      const value = (event.target as HTMLSelectElement).value
      if (this.layerShown) o.seg.setActiveMapping(this.layerShown, value || null)
    })
  }

  private el<T extends HTMLElement = HTMLElement>(name: string): T {
    return this.o.root.querySelector(`[data-testid="${name}"]`) as T
  }

  private requests(): ProofreadingApi {
    if (!this.mapping) throw new Error('the volume layer has no active mapping: choose one in its line')
    return this.mapping.api
  }

  /** The volume layer shown (or none): its mapping follows its entry's `activeMapping`. */
  sync(volume: { id: string; entry: LayerEntry; layer: Layer } | null): void {
    this.layerShown = volume?.id ?? ''
    const name = volume?.entry.activeMapping ?? null
    const current = this.mapping
    if (current && volume && current.layer === volume.id && current.name === name) return
    if (current) {
      current.agglomerates.close()
      this.mapping = null
    }
    this.tool.clear()
    if (!volume) return
    const source = volume.layer.source
    if (!name) {
      source.onMapped = () => undefined
      source.onVoxels = () => undefined
      return
    }
    const api = new ProofreadingApi(this.o.api.token, this.o.annotation, volume.id)
    const agglomerates = new AgglomerateMap((ids) => api.agglomerates(ids))
    agglomerates.onChange = () => this.o.redraw()
    source.onMapped = (mapped) => agglomerates.applyMapped(mapped)
    source.onVoxels = (voxels) => agglomerates.scan(voxels)
    this.mapping = { layer: volume.id, name, agglomerates, api }
    this.o.redraw()
  }

  /** The active segment's agglomerate (null: none, or not known yet). */
  get activeAgglomerate(): SegmentId | null {
    const active = this.tool.active
    if (!active || !this.mapping) return null
    return this.mapping.agglomerates.get(active.supervoxel) ?? null
  }

  /** How the overlay colours ids when the layer has a mapping (null: it has none). */
  overlay(colourOf: (id: SegmentId) => number, look: string): { colour: (id: number | bigint) => number; look: string } | null {
    const mapping = this.mapping
    if (!mapping) return null
    const active = this.activeAgglomerate
    return {
      colour: agglomerateColour(mapping.agglomerates, colourOf, active),
      look: `${look}/agg${mapping.agglomerates.revision}/${active ?? '-'}`,
    }
  }

  /** A click of the proofreading tool on ``value`` (a supervoxel; undefined: not loaded) at ``p``. */
  click(kind: ClickKind, value: SegmentId | undefined, p: Vec3): void {
    if (!this.mapping) {
      this.tool.message = { text: 'the volume layer has no active mapping: choose one in its line above', error: true }
    } else if (value === undefined) {
      this.tool.message = { text: 'not loaded yet: click again in a moment', error: true }
    } else if (value === 0) {
      this.tool.message = { text: 'no segment here', error: true }
    } else if (kind === 'pick') {
      this.tool.pick(segmentId(value), p)
    } else if (kind === 'merge') {
      void this.tool.merge(segmentId(value), p)
    } else {
      void this.tool.split(segmentId(value), p)
    }
    this.o.redraw()
  }

  /** Where the white crosshair goes (the active segment's click). */
  marker(): Vec3 | null {
    return this.mapping ? (this.tool.active?.position ?? null) : null
  }

  /** The layer's mapping choice, the active segment line, the toast and the connectome (each frame). */
  render(volume: { entry: LayerEntry } | null, writable: boolean, toolShown: boolean): void {
    const select = this.el<HTMLSelectElement>('active-mapping')
    const fallback = volume?.entry.fallback ?? null
    const dataset = this.o.datasetSegmentation?.info
    const graphs = dataset && dataset.name === fallback ? (dataset.agglomerateGraphs ?? []) : []
    const current = volume?.entry.activeMapping ?? ''
    const options = ['', ...new Set([...graphs, ...(current ? [current] : [])])]
    const key = options.join('\n')
    if (select.dataset.options !== key) {
      select.dataset.options = key
      select.replaceChildren(...options.map((name) => new Option(name || 'no agglomerate mapping', name)))
    }
    if (document.activeElement !== select) select.value = current
    select.disabled = !writable
    this.el('active-mapping-row').hidden = !volume || options.length < 2

    const line = this.el('proofread-active')
    const active = this.tool.active
    const agglomerate = this.activeAgglomerate
    line.hidden = !toolShown
    const text = this.el('proofread-active-text')
    text.textContent = !this.mapping
      ? 'choose the layer\'s agglomerate mapping first'
      : active
        ? `supervoxel ${active.supervoxel} · agglomerate ${agglomerate ?? '…'}`
        : 'none (left click picks one)'
    text.dataset.supervoxel = active ? String(active.supervoxel) : ''
    text.dataset.agglomerate = agglomerate === null ? '' : String(agglomerate)
    text.dataset.busy = String(this.tool.busy)

    this.toast()
    this.el('tab-connectome').hidden = !this.mapping
    // The tab goes with the mapping: back to the trees if it was open.
    if (!this.mapping && !this.el('connectome-panel').hidden) this.el('tab-trees').click()
    this.connectome.update(this.mapping?.api ?? null, active?.supervoxel ?? null, this.mapping?.agglomerates.changes ?? 0)
  }

  private toast(): void {
    const message = this.tool.message
    if (message === this.toastShown) return
    this.toastShown = message
    const toast = this.el('toast')
    clearTimeout(this.toastTimer)
    if (!message) {
      toast.hidden = true
      return
    }
    toast.textContent = message.text
    toast.dataset.serial = String(++this.toasts)
    toast.classList.toggle('error', message.error)
    toast.dataset.kind = message.error ? 'error' : 'info'
    toast.hidden = false
    if (!message.text.endsWith('…')) this.toastTimer = window.setTimeout(() => (toast.hidden = true), TOAST_MS)
  }
}
