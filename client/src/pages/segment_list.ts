// The Segments tab, as WEBKNOSSOS's segments list: the volume layer's
// segments (listed once painted) inside nested groups; per segment a
// visibility box (hidden: not drawn in the overlay), its colour (pick
// another to recolour), its name (click: make it the active segment; double
// click: rename), "jump" to its anchor, and the group it sits in. Segments
// and groups are dragged onto a group (or "top level") to move them; a
// group's name renames on double click, × deletes it (its segments and
// subgroups move up).

import type { SegmentationDoc, SegmentValue } from '../segmentation/model'
import type { Vec3 } from '../segmentation/ops'
import { paintable, parseSegmentId, type SegmentId } from '../segmentation/segment_id'
import { segmentColour } from '../volume/layers'

export interface SegmentListState {
  layer: string
  active: number | null
  editable: boolean
  activate(id: number): void
  jump(anchor: Vec3): void
}

const DRAG_TYPE = 'application/x-collab-segment-item'

/** A segment's colour as CSS: its own, else its id's hashed colour. */
export function segmentCss(id: SegmentId, value: SegmentValue | undefined): string {
  if (value?.color) return `rgb(${value.color.slice(0, 3).map((c) => Math.round(c * 255)).join(', ')})`
  const rgba = segmentColour(id)
  return `rgb(${rgba & 255}, ${(rgba >> 8) & 255}, ${(rgba >> 16) & 255})`
}

/** Ids in decimal, exact above 2^53 too (bigints). */
export function segmentName(id: SegmentId, value: SegmentValue | undefined): string {
  return value?.name || `Segment ${id}`
}

/** A dragged segment travels as its decimal string (bigints have no JSON). */
function draggable(li: HTMLElement, item: { segment: string } | { group: string }): void {
  li.draggable = true
  li.addEventListener('dragstart', (event) => {
    event.stopPropagation()
    event.dataTransfer?.setData(DRAG_TYPE, JSON.stringify(item))
    if (event.dataTransfer) event.dataTransfer.effectAllowed = 'move'
  })
}

export function renderSegmentList(container: HTMLElement, seg: SegmentationDoc, state: SegmentListState): void {
  const layer = state.layer
  const segments = seg.segmentsOf(layer)
  const groups = seg.groupsOf(layer)
  const known = new Set(groups.map((g) => g.id))
  const groupOf = (value: SegmentValue) => (value.groupId && known.has(value.groupId) ? value.groupId : null)

  const dropTarget = (element: HTMLElement, group: string | null) => {
    element.addEventListener('dragover', (event) => {
      if (!event.dataTransfer?.types.includes(DRAG_TYPE)) return
      event.preventDefault()
      element.classList.add('drop-here')
    })
    element.addEventListener('dragleave', () => element.classList.remove('drop-here'))
    element.addEventListener('drop', (event) => {
      event.preventDefault()
      element.classList.remove('drop-here')
      let item: { segment?: unknown; group?: string }
      try {
        item = JSON.parse(event.dataTransfer?.getData(DRAG_TYPE) || '{}')
      } catch {
        return
      }
      const segment = typeof item.segment === 'string' ? parseSegmentId(item.segment) : null
      if (segment !== null) seg.moveSegment(layer, segment, group)
      else if (typeof item.group === 'string' && item.group !== group) seg.moveGroup(item.group, group)
    })
  }

  const row = (id: SegmentId, value: SegmentValue): HTMLElement => {
    const li = document.createElement('li')
    li.dataset.segment = String(id)
    if (id === state.active) li.classList.add('active')
    const visible = document.createElement('input')
    visible.type = 'checkbox'
    visible.className = 'segment-visible'
    visible.checked = value.isVisible !== false
    visible.disabled = !state.editable
    visible.addEventListener('change', () => seg.updateSegment(layer, id, { isVisible: visible.checked }))
    let swatch: HTMLElement
    if (state.editable) {
      const picker = document.createElement('input')
      picker.type = 'color'
      picker.className = 'tree-color segment-color'
      picker.value = hex(segmentCss(id, value))
      picker.addEventListener('change', () => seg.updateSegment(layer, id, { color: [...rgbOf(picker.value), 1] }))
      swatch = picker
    } else {
      swatch = document.createElement('span')
      swatch.className = 'swatch'
      swatch.style.background = segmentCss(id, value)
    }
    const name = document.createElement('span')
    name.className = 'segment-name'
    name.textContent = `${segmentName(id, value)} (${id})`
    // Ids above 2^53 − 1 are listed, not painted: they never become active.
    if (paintable(id)) name.addEventListener('click', () => state.activate(id))
    name.addEventListener('dblclick', () => {
      if (!state.editable) return
      const renamed = prompt('Segment name', value.name ?? '')
      if (renamed !== null) seg.updateSegment(layer, id, { name: renamed || null })
    })
    li.append(visible, swatch, name)
    const anchor = value.anchor
    if (Array.isArray(anchor)) {
      const jump = document.createElement('button')
      jump.className = 'segment-jump'
      jump.title = `jump to ${anchor.join(', ')}`
      jump.textContent = 'jump'
      jump.addEventListener('click', () => state.jump(anchor))
      li.append(' ', jump)
    }
    if (state.editable) {
      draggable(li, { segment: String(id) })
      const move = document.createElement('select')
      move.className = 'segment-group'
      move.append(new Option('(top)', ''), ...groups.map((g) => new Option(g.name, g.id)))
      move.value = groupOf(value) ?? ''
      move.addEventListener('change', () => seg.moveSegment(layer, id, move.value || null))
      li.append(' ', move)
    }
    return li
  }

  const level = (parent: string | null, depth: number): HTMLElement[] => {
    const items: HTMLElement[] = []
    if (depth > 64) return items // a cycle
    for (const g of groups.filter((g) => (g.parentId && known.has(g.parentId) ? g.parentId : null) === parent)) {
      const li = document.createElement('li')
      li.className = 'group'
      li.dataset.group = g.id
      const title = document.createElement('span')
      title.className = 'group-name'
      title.textContent = `▸ ${g.name}`
      const inner = document.createElement('ul')
      inner.append(...level(g.id, depth + 1))
      li.append(title)
      if (state.editable) {
        title.addEventListener('dblclick', () => {
          const renamed = prompt('Group name', g.name)
          if (renamed !== null) seg.renameGroup(g.id, renamed)
        })
        const remove = document.createElement('button')
        remove.className = 'group-delete'
        remove.title = 'delete the group (its segments and groups move up)'
        remove.textContent = '×'
        remove.addEventListener('click', () => seg.deleteGroup(g.id))
        li.append(' ', remove)
        draggable(li, { group: g.id })
        dropTarget(title, g.id)
      }
      li.append(inner)
      items.push(li)
    }
    for (const [id, value] of segments) if (groupOf(value) === parent) items.push(row(id, value))
    return items
  }
  container.replaceChildren(...level(null, 0))
  if (!segments.length) {
    const empty = document.createElement('li')
    empty.className = 'hint'
    empty.textContent = 'no segments yet: a segment is listed once painted'
    container.append(empty)
  }
  if (state.editable) {
    const top = document.createElement('li')
    top.className = 'drop-top'
    top.dataset.testid = 'segments-drop-top'
    top.textContent = '⤒ top level (drop here)'
    dropTarget(top, null)
    const add = document.createElement('li')
    const button = document.createElement('button')
    button.dataset.testid = 'new-segment-group'
    button.textContent = 'new group'
    button.addEventListener('click', () => {
      const name = prompt('Group name')
      if (!name) return
      const active = state.active === null ? undefined : seg.segment(layer, state.active)
      seg.createGroup(layer, name, active ? groupOf(active) : null)
    })
    add.append(button)
    container.append(top, add)
  }
}

/** ``rgb(r, g, b)`` as ``#rrggbb`` (what a colour input takes). */
function hex(css: string): string {
  const parts = css.match(/\d+/g)?.slice(0, 3).map(Number) ?? [178, 178, 178]
  return `#${parts.map((c) => c.toString(16).padStart(2, '0')).join('')}`
}

function rgbOf(value: string): [number, number, number] {
  const n = Number.parseInt(value.slice(1), 16)
  return [((n >> 16) & 255) / 255, ((n >> 8) & 255) / 255, (n & 255) / 255]
}
