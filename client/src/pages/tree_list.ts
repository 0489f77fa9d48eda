// The tree list, as WEBKNOSSOS's: trees inside nested groups; per tree a
// visibility box, its colour (pick another to recolour), its name and node
// count (click: make it the active tree; double click: rename), the group it
// sits in, and "merge into active". Trees and groups are dragged onto a
// group (or onto "top level") to move them; a group's name renames on double
// click, × deletes it (its trees and subgroups move up). A new group is
// created at the top level or inside the active tree's group.

import type { SkeletonDoc } from '../skeleton/model'

export interface TreeListState {
  activeTree: string | null
  editable: boolean
  setActive(tree: string): void
}

const DRAG_TYPE = 'application/x-collab-tree-item'

function draggable(li: HTMLElement, item: { tree: string } | { group: string }): void {
  li.draggable = true
  li.addEventListener('dragstart', (event) => {
    event.stopPropagation() // the innermost item is the one dragged
    event.dataTransfer?.setData(DRAG_TYPE, JSON.stringify(item))
    if (event.dataTransfer) event.dataTransfer.effectAllowed = 'move'
  })
}

export function renderTreeList(container: HTMLElement, sk: SkeletonDoc, live: SkeletonDoc, state: TreeListState): void {
  const counts = sk.index.treeCounts
  const groups = [...sk.groups.entries()].map(([id, g]) => ({
    id,
    name: String(g.get('name') ?? id),
    parent: (g.get('parentId') as string | null) ?? null,
  }))
  const known = new Set(groups.map((g) => g.id))
  const groupOf = (tree: string) => {
    const g = (sk.trees.get(tree)?.get('groupId') as string | null) ?? null
    return g && known.has(g) ? g : null // a missing group: shown at the top (as exporters do)
  }

  // A drop onto a group's name (or "top level") moves the dragged tree or group there.
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
      let item: { tree?: string; group?: string }
      try {
        item = JSON.parse(event.dataTransfer?.getData(DRAG_TYPE) || '{}')
      } catch {
        return
      }
      if (typeof item.tree === 'string') live.moveTree(item.tree, group)
      else if (typeof item.group === 'string' && item.group !== group) live.moveGroup(item.group, group)
    })
  }

  const treeRow = (tid: string): HTMLElement => {
    const tree = sk.trees.get(tid)
    const li = document.createElement('li')
    li.dataset.tree = tid
    if (tid === state.activeTree) li.classList.add('active')
    const visible = document.createElement('input')
    visible.type = 'checkbox'
    visible.checked = sk.isVisible(tid)
    visible.disabled = !state.editable
    visible.addEventListener('change', () => live.setTreeVisible(tid, visible.checked))
    let swatch: HTMLElement
    if (state.editable) {
      const picker = document.createElement('input')
      picker.type = 'color'
      picker.className = 'tree-color'
      picker.value = hex(sk.treeColor(tid))
      picker.addEventListener('change', () => live.setTreeColor(tid, rgbOf(picker.value)))
      swatch = picker
    } else {
      swatch = document.createElement('span')
      swatch.className = 'swatch'
      swatch.style.background = sk.treeColor(tid)
    }
    const name = document.createElement('span')
    name.className = 'tree-name'
    name.textContent = `${String(tree?.get('name') ?? tid)} (${counts.get(tid) ?? 0})`
    name.addEventListener('click', () => state.setActive(tid))
    name.addEventListener('dblclick', () => {
      if (!state.editable) return
      const renamed = prompt('Tree name', String(tree?.get('name') ?? ''))
      if (renamed !== null) live.renameTree(tid, renamed)
    })
    li.append(visible, swatch, name)
    if (state.editable) {
      draggable(li, { tree: tid })
      const move = document.createElement('select')
      move.className = 'tree-group'
      move.append(new Option('(top)', ''), ...groups.map((g) => new Option(g.name, g.id)))
      move.value = groupOf(tid) ?? ''
      move.addEventListener('change', () => live.moveTree(tid, move.value || null))
      li.append(' ', move)
      if (state.activeTree && state.activeTree !== tid && sk.trees.has(state.activeTree)) {
        const merge = document.createElement('button')
        merge.className = 'tree-merge'
        merge.textContent = 'merge into active'
        merge.addEventListener('click', () => live.mergeTrees(state.activeTree as string, tid))
        li.append(' ', merge)
      }
    }
    return li
  }

  const level = (parent: string | null, depth: number): HTMLElement[] => {
    const items: HTMLElement[] = []
    if (depth > 64) return items // a cycle the server has not cut yet
    for (const g of groups.filter((g) => (g.parent && known.has(g.parent) ? g.parent : null) === parent)) {
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
          if (renamed !== null) live.renameGroup(g.id, renamed)
        })
        const remove = document.createElement('button')
        remove.className = 'group-delete'
        remove.title = 'delete the group (its trees and groups move up)'
        remove.textContent = '×'
        remove.addEventListener('click', () => live.deleteGroup(g.id))
        li.append(' ', remove)
        draggable(li, { group: g.id })
        dropTarget(title, g.id)
      }
      li.append(inner)
      items.push(li)
    }
    for (const tid of sk.trees.keys()) if (groupOf(tid) === parent) items.push(treeRow(tid))
    return items
  }
  container.replaceChildren(...level(null, 0))
  if (state.editable) {
    const top = document.createElement('li')
    top.className = 'drop-top'
    top.dataset.testid = 'drop-top'
    top.textContent = '⤒ top level (drop here)'
    dropTarget(top, null)
    container.append(top)
    const add = document.createElement('li')
    const button = document.createElement('button')
    button.dataset.testid = 'new-group'
    button.textContent = 'new group'
    button.addEventListener('click', () => {
      const name = prompt('Group name')
      if (!name) return
      const parent = state.activeTree ? groupOf(state.activeTree) : null
      live.createGroup(name, parent)
    })
    add.append(button)
    container.append(add)
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
