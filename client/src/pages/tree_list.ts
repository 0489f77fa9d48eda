// The tree list, as WEBKNOSSOS's: trees inside nested groups; per tree a
// visibility box, its colour, its name and node count (click: make it the
// active tree; double click: rename), the group it sits in, and "merge into
// active". A new group is created at the top level or inside the active
// tree's group.

import type { SkeletonDoc } from '../skeleton/model'

export interface TreeListState {
  activeTree: string | null
  editable: boolean
  setActive(tree: string): void
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
    const swatch = document.createElement('span')
    swatch.className = 'swatch'
    swatch.style.background = sk.treeColor(tid)
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
      title.textContent = `▸ ${g.name}`
      const inner = document.createElement('ul')
      inner.append(...level(g.id, depth + 1))
      li.append(title, inner)
      items.push(li)
    }
    for (const tid of sk.trees.keys()) if (groupOf(tid) === parent) items.push(treeRow(tid))
    return items
  }
  container.replaceChildren(...level(null, 0))
  if (state.editable) {
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
