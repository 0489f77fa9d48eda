// The Connectome tab, as WEBKNOSSOS's connectome view: the active
// agglomerate's synaptic partners (agglomerate, synapses out and in, in all)
// and its synapses (id, type, direction, partner, where); a click on a
// synapse centres the view on it. Read from GET …/connectome?segment=<the
// active supervoxel> (docs/api.md, "Proofreading"), so it follows the
// supervoxel through merges and splits: asked again whenever the mapping
// changes (a MAPPED frame) or another segment becomes active, the newest
// question's answer shown.

import { ApiError } from '../api'
import type { Connectome, ProofreadingApi, Vec3 } from '../proofreading/requests'
import type { SegmentId } from '../segmentation/segment_id'
import { segmentColour } from '../volume/layers'

/** Synapses listed (the server lists at most 10,000; the counts cover all). */
const SHOWN_SYNAPSES = 500
/** How long changes gather before the connectome is asked again. */
const REFRESH_MS = 150

const css = (id: SegmentId) => {
  const rgba = segmentColour(id)
  return `rgb(${rgba & 255}, ${(rgba >> 8) & 255}, ${(rgba >> 16) & 255})`
}

export class ConnectomePanel {
  /** What the panel shows or is asking for: layer/supervoxel/mapping change count. */
  private asked = ''
  private serial = 0
  private timer: ReturnType<typeof setTimeout> | null = null
  /** The answer shown (null: none). */
  shown: Connectome | null = null

  constructor(
    private readonly panel: HTMLElement,
    private readonly centreOn: (p: Vec3) => void,
  ) {}

  /** Show the connectome of ``supervoxel``'s agglomerate as of mapping change ``changes``. */
  update(api: ProofreadingApi | null, supervoxel: SegmentId | null, changes: number): void {
    const key = api && supervoxel !== null ? `${api.layer}/${supervoxel}/${changes}` : ''
    if (key === this.asked) return
    this.asked = key
    if (this.timer !== null) clearTimeout(this.timer)
    this.timer = null
    if (!api || supervoxel === null) {
      this.serial += 1
      this.shown = null
      this.say('pick a segment with the proofreading tool (left click) to see its synapses')
      this.panel.dataset.state = 'none'
      return
    }
    this.panel.dataset.state = 'loading'
    this.timer = setTimeout(() => {
      this.timer = null
      void this.load(api, supervoxel)
    }, REFRESH_MS)
  }

  private async load(api: ProofreadingApi, supervoxel: SegmentId): Promise<void> {
    const serial = ++this.serial
    try {
      const connectome = await api.connectome(supervoxel)
      if (serial !== this.serial) return // asked again meanwhile
      this.shown = connectome
      this.render(connectome)
    } catch (error) {
      if (serial !== this.serial) return
      this.shown = null
      const missing = error instanceof ApiError && error.status === 404
      this.say(missing ? `no synapses: ${error.message}` : `the connectome did not load: ${error instanceof Error ? error.message : error}`)
      this.panel.dataset.state = 'error'
    }
  }

  private say(text: string): void {
    const p = document.createElement('p')
    p.className = 'hint'
    p.textContent = text
    this.panel.replaceChildren(p)
  }

  private render(c: Connectome): void {
    const summary = document.createElement('p')
    summary.dataset.testid = 'connectome-summary'
    summary.dataset.agglomerate = String(c.agglomerate)
    summary.textContent = `agglomerate ${c.agglomerate}: ${c.supervoxels} supervoxels, ${c.total} synapses, ${c.partners.length} partners`
    const table = document.createElement('table')
    table.className = 'partners'
    table.dataset.testid = 'partners'
    const head = table.createTHead().insertRow()
    for (const title of ['partner', 'out', 'in', 'total']) {
      const th = document.createElement('th')
      th.textContent = title
      head.append(th)
    }
    const body = table.createTBody()
    for (const p of c.partners) {
      const row = body.insertRow()
      row.dataset.agglomerate = String(p.agglomerate)
      const name = row.insertCell()
      const swatch = document.createElement('span')
      swatch.className = 'swatch'
      swatch.style.background = css(p.agglomerate)
      name.append(swatch, String(p.agglomerate))
      for (const n of [p.out, p.in, p.total]) row.insertCell().textContent = String(n)
    }
    const list = document.createElement('ul')
    list.className = 'synapses'
    list.dataset.testid = 'synapses'
    for (const s of c.synapses.slice(0, SHOWN_SYNAPSES)) {
      const li = document.createElement('li')
      li.dataset.synapse = String(s.id)
      li.title = 'centre the view on it'
      li.textContent = `#${s.id} ${s.type} ${s.direction === 'out' ? '→' : '←'} ${s.partner} at ${s.position.join(', ')}`
      li.addEventListener('click', () => this.centreOn(s.position))
      list.append(li)
    }
    const more = c.synapses.length > SHOWN_SYNAPSES ? [`… ${c.synapses.length - SHOWN_SYNAPSES} more`] : []
    this.panel.replaceChildren(summary, table, list, ...more)
    this.panel.dataset.state = 'shown'
    this.panel.dataset.version = String(c.version)
  }
}
