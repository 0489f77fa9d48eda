// The skeleton document (../shared/contract.md, "The skeleton document"):
// typed reads of its Y.Maps and the edits the viewer makes, each one Yjs
// transaction with the page's own origin, so Y.UndoManager undoes this
// page's edits only, never anyone else's.

import * as Y from 'yjs'
import { SkeletonIndex } from './index'

export type Vec3 = [number, number, number]

export interface NodeValue {
  treeId: string
  position: Vec3
  radius: number
  rotation: Vec3
  viewport: number
  mag: number
  bitDepth: number
  interpolation: boolean
  time: number
}

export const LOCAL = Symbol('this page')

const PALETTE: [number, number, number][] = [
  [0.9, 0.3, 0.3], [0.3, 0.7, 0.3], [0.3, 0.5, 0.9], [0.9, 0.7, 0.2],
  [0.7, 0.3, 0.9], [0.2, 0.8, 0.8], [0.9, 0.5, 0.7], [0.6, 0.6, 0.3],
]

export class SkeletonDoc {
  readonly trees: Y.Map<Y.Map<unknown>>
  readonly nodes: Y.Map<NodeValue>
  readonly edges: Y.Map<string>
  readonly comments: Y.Map<string>
  readonly branchpoints: Y.Map<number>
  readonly groups: Y.Map<Y.Map<unknown>>
  readonly undo: Y.UndoManager
  /** Plain structures the views read (kept current from the maps' events). */
  readonly index: SkeletonIndex
  private counter = 0
  /** Per tree: its CSS colour and visibility (read per node while drawing). */
  private readonly treeLooks = new Map<string, [string, boolean]>()

  constructor(readonly doc: Y.Doc) {
    this.trees = doc.getMap('trees')
    this.nodes = doc.getMap('nodes')
    this.edges = doc.getMap('edges')
    this.comments = doc.getMap('comments')
    this.branchpoints = doc.getMap('branchpoints')
    this.groups = doc.getMap('groups')
    this.index = new SkeletonIndex(this.nodes, this.edges)
    this.trees.observeDeep(() => this.treeLooks.clear())
    this.undo = new Y.UndoManager(
      [this.trees, this.nodes, this.edges, this.comments, this.branchpoints, this.groups],
      { trackedOrigins: new Set([LOCAL]), captureTimeout: 0 },
    )
  }

  /** A fresh id: `<clientID>-<counter>` (never contains a comma). */
  newId(): string {
    this.counter += 1
    return `${this.doc.clientID}-${this.counter}`
  }

  createTree(name?: string): string {
    const id = this.newId()
    this.doc.transact(() => {
      const tree = new Y.Map<unknown>()
      const color = PALETTE[this.trees.size % PALETTE.length]
      tree.set('name', name ?? `tree ${this.trees.size + 1}`)
      tree.set('color', [...color, 1])
      tree.set('groupId', null)
      tree.set('isVisible', true)
      tree.set('type', 'DEFAULT')
      tree.set('metadata', {})
      this.trees.set(id, tree)
    }, LOCAL)
    return id
  }

  /** Add a node (to ``treeId``, or to a new tree), connected to ``connectTo`` if given. */
  addNode(position: Vec3, treeId: string | null, connectTo: string | null): string {
    const id = this.newId()
    this.doc.transact(() => {
      const tree = treeId && this.trees.has(treeId) ? treeId : this.createTree()
      this.nodes.set(id, {
        treeId: tree,
        position: position.map(Math.round) as Vec3,
        radius: 1,
        rotation: [0, 0, 0],
        viewport: 0,
        mag: 1,
        bitDepth: 8,
        interpolation: false,
        time: Date.now(),
      })
      if (connectTo && this.nodes.get(connectTo)?.treeId === tree) {
        this.edges.set(`${connectTo},${id}`, tree)
      }
    }, LOCAL)
    return id
  }

  /** Delete a node; a tree it held together splits (WEBKNOSSOS's Delete). */
  deleteNode(id: string): void {
    const tree = this.nodes.get(id)?.treeId
    this.doc.transact(() => {
      this.nodes.delete(id)
      this.comments.delete(id)
      this.branchpoints.delete(id)
      for (const key of [...this.edges.keys()]) {
        const [a, b] = key.split(',')
        if (a === id || b === id) this.edges.delete(key)
      }
      if (tree) this.splitIfDisconnected(tree)
    }, LOCAL)
  }

  /** An edge from ``a`` to ``b``; when they are in two trees, ``b``'s joins ``a``'s. */
  connect(a: string, b: string): void {
    const na = this.nodes.get(a)
    const nb = this.nodes.get(b)
    if (!na || !nb || a === b || this.edges.has(`${a},${b}`) || this.edges.has(`${b},${a}`)) return
    this.doc.transact(() => {
      if (nb.treeId !== na.treeId) this.mergeTrees(na.treeId, nb.treeId)
      this.edges.set(`${a},${b}`, na.treeId)
    }, LOCAL)
  }

  /** Remove the edge between ``a`` and ``b``; the tree splits if it falls apart. */
  disconnect(a: string, b: string): void {
    const key = this.edges.has(`${a},${b}`) ? `${a},${b}` : this.edges.has(`${b},${a}`) ? `${b},${a}` : null
    const tree = this.nodes.get(a)?.treeId
    if (!key || !tree) return
    this.doc.transact(() => {
      this.edges.delete(key)
      this.splitIfDisconnected(tree)
    }, LOCAL)
  }

  moveNode(id: string, position: Vec3): void {
    const node = this.nodes.get(id)
    if (!node) return
    this.doc.transact(() => this.nodes.set(id, { ...node, position: position.map(Math.round) as Vec3 }), LOCAL)
  }

  /** A tree whose nodes no longer hang together becomes one tree per part:
   *  the part holding the smallest node id keeps the tree (as the server's
   *  model does); the others get new trees of the same name and colour. */
  private splitIfDisconnected(treeId: string): void {
    const members = [...this.nodes.entries()].filter(([, n]) => n.treeId === treeId).map(([id]) => id)
    if (members.length < 2) return
    const neighbours = new Map<string, string[]>(members.map((id) => [id, []]))
    for (const key of this.edges.keys()) {
      const [a, b] = key.split(',')
      if (neighbours.has(a) && neighbours.has(b)) {
        neighbours.get(a)!.push(b)
        neighbours.get(b)!.push(a)
      }
    }
    const part = new Map<string, number>()
    const parts: string[][] = []
    for (const start of members) {
      if (part.has(start)) continue
      const nodes = [start]
      part.set(start, parts.length)
      for (let i = 0; i < nodes.length; i++) {
        for (const next of neighbours.get(nodes[i])!) {
          if (!part.has(next)) {
            part.set(next, parts.length)
            nodes.push(next)
          }
        }
      }
      parts.push(nodes)
    }
    if (parts.length < 2) return
    const smallest = (nodes: string[]) => nodes.reduce((m, id) => (id < m ? id : m))
    parts.sort((x, y) => (smallest(x) < smallest(y) ? -1 : 1))
    const source = this.trees.get(treeId)
    for (const nodes of parts.slice(1)) {
      const tree = this.createTree(`${String(source?.get('name') ?? 'tree')} (split)`)
      this.trees.get(tree)?.set('color', source?.get('color') ?? [0.7, 0.7, 0.7, 1])
      const inPart = new Set(nodes)
      for (const id of nodes) this.nodes.set(id, { ...(this.nodes.get(id) as NodeValue), treeId: tree })
      for (const [key, label] of this.edges) {
        if (label === treeId && inPart.has(key.split(',')[0])) this.edges.set(key, tree)
      }
    }
  }

  setBranchpoint(id: string): void {
    this.doc.transact(() => this.branchpoints.set(id, Date.now()), LOCAL)
  }

  /** The most recent branchpoint (WEBKNOSSOS's J jumps there). */
  lastBranchpoint(): string | null {
    let best: string | null = null
    let time = -Infinity
    for (const [id, t] of this.branchpoints) {
      if (this.nodes.has(id) && t > time) {
        best = id
        time = t
      }
    }
    return best
  }

  setComment(id: string, text: string): void {
    this.doc.transact(() => (text ? this.comments.set(id, text) : this.comments.delete(id)), LOCAL)
  }

  setRadius(id: string, radius: number): void {
    const node = this.nodes.get(id)
    if (!node || !(radius > 0)) return
    this.doc.transact(() => this.nodes.set(id, { ...node, radius }), LOCAL)
  }

  renameTree(id: string, name: string): void {
    this.doc.transact(() => this.trees.get(id)?.set('name', name), LOCAL)
  }

  setTreeVisible(id: string, visible: boolean): void {
    this.doc.transact(() => this.trees.get(id)?.set('isVisible', visible), LOCAL)
  }

  /** Move every node and edge of ``from`` into ``into`` and delete ``from`` (WEBKNOSSOS's merge). */
  mergeTrees(into: string, from: string): void {
    if (into === from || !this.trees.has(into) || !this.trees.has(from)) return
    this.doc.transact(() => {
      for (const [id, node] of this.nodes) if (node.treeId === from) this.nodes.set(id, { ...node, treeId: into })
      for (const [key, tree] of this.edges) if (tree === from) this.edges.set(key, into)
      this.trees.delete(from)
    }, LOCAL)
  }

  createGroup(name: string, parentId: string | null = null): string {
    const id = this.newId()
    this.doc.transact(() => {
      const group = new Y.Map<unknown>()
      group.set('name', name)
      group.set('parentId', parentId)
      group.set('isExpanded', true)
      this.groups.set(id, group)
    }, LOCAL)
    return id
  }

  renameGroup(id: string, name: string): void {
    this.doc.transact(() => this.groups.get(id)?.set('name', name), LOCAL)
  }

  /** Put a group inside another (null: the top level); never inside itself or its own subgroups. */
  moveGroup(id: string, parentId: string | null): boolean {
    for (let at = parentId, depth = 0; at !== null && depth < 1000; depth++) {
      if (at === id) return false
      at = (this.groups.get(at)?.get('parentId') as string | null) ?? null
    }
    this.doc.transact(() => this.groups.get(id)?.set('parentId', parentId), LOCAL)
    return true
  }

  /** Delete a group: its trees and subgroups move up to its parent (as in WEBKNOSSOS). */
  deleteGroup(id: string): void {
    const group = this.groups.get(id)
    if (!group) return
    const parent = (group.get('parentId') as string | null) ?? null
    this.doc.transact(() => {
      for (const tree of this.trees.values()) if (tree.get('groupId') === id) tree.set('groupId', parent)
      for (const other of this.groups.values()) if (other.get('parentId') === id) other.set('parentId', parent)
      this.groups.delete(id)
    }, LOCAL)
  }

  /** A tree's colour, [r, g, b] floats 0..1 (alpha 1). */
  setTreeColor(id: string, rgb: [number, number, number]): void {
    this.doc.transact(() => this.trees.get(id)?.set('color', [...rgb, 1]), LOCAL)
  }

  hasEdge(a: string, b: string): boolean {
    return this.edges.has(`${a},${b}`) || this.edges.has(`${b},${a}`)
  }

  /** The summed length of a tree's edges, in voxels (mag 1). */
  pathLength(treeId: string): number {
    let length = 0
    for (const [key, tree] of this.edges) {
      if (tree !== treeId) continue
      const [a, b] = key.split(',')
      const p = this.nodes.get(a)?.position
      const q = this.nodes.get(b)?.position
      if (p && q) length += Math.hypot(p[0] - q[0], p[1] - q[1], p[2] - q[2])
    }
    return length
  }

  moveTree(treeId: string, groupId: string | null): void {
    this.doc.transact(() => this.trees.get(treeId)?.set('groupId', groupId), LOCAL)
  }

  isVisible(treeId: string): boolean {
    return this.looks(treeId)[1]
  }

  treeColor(treeId: string): string {
    return this.looks(treeId)[0]
  }

  private looks(treeId: string): [string, boolean] {
    let looks = this.treeLooks.get(treeId)
    if (!looks) {
      const tree = this.trees.get(treeId)
      const [r, g, b] = (tree?.get('color') as number[] | undefined) ?? [0.7, 0.7, 0.7]
      looks = [`rgb(${Math.round(r * 255)}, ${Math.round(g * 255)}, ${Math.round(b * 255)})`, tree?.get('isVisible') !== false]
      this.treeLooks.set(treeId, looks)
    }
    return looks
  }
}
