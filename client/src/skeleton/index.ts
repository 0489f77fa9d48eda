// The skeleton as plain JavaScript structures, kept current from the Yjs
// maps' events: what drawing and picking read instead of iterating Y.Maps
// (reading a Y.Map entry costs about a microsecond; a 100,000-node skeleton
// drawn in four views took 1.6 s a frame that way). Nodes are bucketed along
// each axis, so a plane visits only the nodes near it.

import type * as Y from 'yjs'
import type { NodeValue } from './model'

/** Slices per bucket along an axis. */
const BUCKET = 8

export class SkeletonIndex {
  readonly nodes = new Map<string, NodeValue>()
  readonly neighbours = new Map<string, Set<string>>()
  readonly treeCounts = new Map<string, number>()
  private readonly buckets: Map<number, Set<string>>[] = [new Map(), new Map(), new Map()]
  /** Changes with every change of nodes or edges (views cache on it). */
  version = 0

  constructor(nodes: Y.Map<NodeValue>, edges: Y.Map<string>) {
    for (const [id, node] of nodes) this.put(id, node)
    for (const key of edges.keys()) this.link(key, true)
    nodes.observe((event) => {
      event.changes.keys.forEach((change, id) => {
        if (change.action !== 'add') this.drop(id)
        if (change.action !== 'delete') {
          const node = nodes.get(id)
          if (node) this.put(id, node)
        }
      })
      this.version += 1
    })
    edges.observe((event) => {
      event.changes.keys.forEach((change, key) => {
        if (change.action === 'add') this.link(key, true)
        else if (change.action === 'delete') this.link(key, false)
      })
      this.version += 1
    })
  }

  /** Ids of the nodes within ``slab`` slices of ``at`` along ``axis``. */
  *near(axis: number, at: number, slab: number): Iterable<string> {
    const buckets = this.buckets[axis]
    for (let b = Math.floor((at - slab) / BUCKET); b <= Math.floor((at + slab) / BUCKET); b++) {
      const ids = buckets.get(b)
      if (!ids) continue
      for (const id of ids) {
        const node = this.nodes.get(id)
        if (node && Math.abs(node.position[axis] - at) <= slab) yield id
      }
    }
  }

  private put(id: string, node: NodeValue): void {
    if (!Array.isArray(node?.position)) return // a broken entry: the server repairs it
    this.nodes.set(id, node)
    this.treeCounts.set(node.treeId, (this.treeCounts.get(node.treeId) ?? 0) + 1)
    for (let axis = 0; axis < 3; axis++) {
      const b = Math.floor(node.position[axis] / BUCKET)
      let ids = this.buckets[axis].get(b)
      if (!ids) this.buckets[axis].set(b, (ids = new Set()))
      ids.add(id)
    }
  }

  private drop(id: string): void {
    const node = this.nodes.get(id)
    if (!node) return
    this.nodes.delete(id)
    const count = (this.treeCounts.get(node.treeId) ?? 1) - 1
    if (count > 0) this.treeCounts.set(node.treeId, count)
    else this.treeCounts.delete(node.treeId)
    for (let axis = 0; axis < 3; axis++) {
      const b = Math.floor(node.position[axis] / BUCKET)
      const ids = this.buckets[axis].get(b)
      ids?.delete(id)
      if (ids && !ids.size) this.buckets[axis].delete(b)
    }
  }

  private link(key: string, on: boolean): void {
    const [a, b] = key.split(',')
    if (!a || !b) return
    for (const [x, y] of [[a, b], [b, a]]) {
      let set = this.neighbours.get(x)
      if (on) {
        if (!set) this.neighbours.set(x, (set = new Set()))
        set.add(y)
      } else if (set) {
        set.delete(y)
        if (!set.size) this.neighbours.delete(x)
      }
    }
  }
}
