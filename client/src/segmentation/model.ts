// The segmentation document (docs/schema.md, "segmentation"): typed reads of
// its maps and the edits the page makes. Voxel ops are written with the
// page's own origin and Y.UndoManager tracks only them, so undo deletes this
// page's ops and never anyone else's (the server then paints the bricks
// again without the op).

import * as Y from 'yjs'
import type { BoundingBox, Vec3, VoxelOp } from './ops'
import { compareSegmentIds, parseSegmentId, type SegmentId } from './segment_id'

export const LOCAL = Symbol('this page (segmentation)')
/** This page undoing its own proofreading op: no Y.UndoManager tracks it
 *  (../tools/proofread.ts keeps those ops' history). */
export const PROOFREAD = Symbol('this page (proofreading undo)')

export interface LayerEntry {
  name: string
  dtype: string
  fallback: string | null
  mags: string[]
  boundingBox: BoundingBox | null
  largestSegmentId: number | null
  /** An agglomerate mapping of the fallback layer: the layer's editable mapping's base (null: none). */
  activeMapping: string | null
}

export interface SegmentValue {
  /** null: unnamed (shown as "Segment <id>"). */
  name: string | null
  /** [r, g, b, a] floats 0..1, or null: the id's hashed colour. */
  color: [number, number, number, number] | null
  anchor: Vec3 | null
  groupId: string | null
  metadata: Record<string, unknown>
  isVisible: boolean
  time: number
}

export interface GroupValue {
  id: string
  layer: string
  name: string
  parentId: string | null
}

const vec3 = (value: unknown): Vec3 | null =>
  Array.isArray(value) && value.length === 3 && value.every((c) => typeof c === 'number' && Number.isFinite(c))
    ? (value.map(Math.round) as Vec3)
    : null

export class SegmentationDoc {
  readonly layers: Y.Map<Y.Map<unknown>>
  readonly segments: Y.Map<SegmentValue>
  readonly groups: Y.Map<Y.Map<unknown>>
  readonly idBlocks: Y.Map<{ count: number; user: number | null }>
  readonly ops: Y.Map<VoxelOp>
  readonly undo: Y.UndoManager
  private counter = 0

  constructor(readonly doc: Y.Doc) {
    this.layers = doc.getMap('layers')
    this.segments = doc.getMap('segments')
    this.groups = doc.getMap('groups')
    this.idBlocks = doc.getMap('idBlocks')
    this.ops = doc.getMap('ops')
    // One stroke, one undo step (captureTimeout 0: never merged with the next).
    this.undo = new Y.UndoManager([this.ops], { trackedOrigins: new Set([LOCAL]), captureTimeout: 0 })
  }

  /** A fresh id: `<clientID>-<counter>` (no comma, no slash). */
  newId(): string {
    this.counter += 1
    return `${this.doc.clientID}-${this.counter}`
  }

  /** The volume layer shown: the one with the smallest id (the same on every page). */
  firstLayer(): string | null {
    const ids = [...this.layers.keys()].filter((id) => this.layer(id) !== null).sort()
    return ids[0] ?? null
  }

  layer(id: string): LayerEntry | null {
    const entry = this.layers.get(id)
    if (!(entry instanceof Y.Map)) return null
    const box = entry.get('boundingBox') as { topLeft?: unknown; size?: unknown } | null | undefined
    const topLeft = vec3(box?.topLeft)
    const size = vec3(box?.size)
    const mags = entry.get('mags')
    const largest = entry.get('largestSegmentId')
    const fallback = entry.get('fallback')
    const active = entry.get('activeMapping')
    return {
      name: String(entry.get('name') ?? id),
      dtype: String(entry.get('dtype') ?? 'uint32'),
      fallback: typeof fallback === 'string' ? fallback : null,
      mags: Array.isArray(mags) && mags.length ? mags.map(String) : ['1'],
      boundingBox: topLeft && size ? { topLeft, size } : null,
      largestSegmentId: typeof largest === 'number' ? largest : null,
      activeMapping: typeof active === 'string' && active ? active : null,
    }
  }

  /** A volume layer (WEBKNOSSOS's "Add volume layer"): a plain write into `layers`. */
  addLayer(entry: Omit<LayerEntry, 'largestSegmentId' | 'activeMapping'> & { activeMapping?: string | null }): string {
    const id = this.newId()
    this.doc.transact(() => {
      const map = new Y.Map<unknown>()
      map.set('name', entry.name)
      map.set('dtype', entry.dtype)
      map.set('fallback', entry.fallback)
      map.set('mags', entry.mags)
      map.set('boundingBox', entry.boundingBox)
      map.set('activeMapping', entry.activeMapping ?? null)
      this.layers.set(id, map)
    }, 'layer')
    return id
  }

  /** The layer's editable mapping starts from ``mapping`` (an agglomerate
   *  mapping of its fallback layer), or (null) the layer has none. */
  setActiveMapping(id: string, mapping: string | null): void {
    const entry = this.layers.get(id)
    if (entry instanceof Y.Map) this.doc.transact(() => entry.set('activeMapping', mapping), 'layer')
  }

  /** Delete an op as this page's proofreading undo (never tracked by ``undo``). */
  deleteOp(key: string): void {
    if (this.ops.has(key)) this.doc.transact(() => this.ops.delete(key), PROOFREAD)
  }

  /** Write one voxel op (one undo step); a segment it paints that has no
   *  entry yet gets one, anchored at ``anchor`` (WEBKNOSSOS lists a segment
   *  once it is painted). */
  write(op: VoxelOp, anchor: Vec3 | null, id = this.newId()): string {
    this.doc.transact(() => {
      this.ops.set(id, op)
      const paints = op.kind !== 'brush' || !op.erase
      if (paints && op.segment > 0 && anchor && !this.segments.has(segmentKey(op.layer, op.segment))) {
        this.segments.set(segmentKey(op.layer, op.segment), {
          name: null,
          color: null,
          anchor,
          groupId: null,
          metadata: {},
          isVisible: true,
          time: op.time,
        })
      }
    }, LOCAL)
    return id
  }

  segment(layer: string, id: SegmentId): SegmentValue | undefined {
    return this.segments.get(segmentKey(layer, id))
  }

  /** The layer's segments with entries, by id (above 2^53 − 1, e.g. imported
   *  from a uint64 layer, as exact bigints). */
  segmentsOf(layer: string): [SegmentId, SegmentValue][] {
    const out: [SegmentId, SegmentValue][] = []
    const prefix = `${layer}/`
    for (const [key, value] of this.segments) {
      if (!key.startsWith(prefix) || typeof value !== 'object' || value === null) continue
      const id = parseSegmentId(key.slice(prefix.length))
      if (id !== null && id > 0) out.push([id, value])
    }
    return out.sort((a, b) => compareSegmentIds(a[0], b[0]))
  }

  /** Change a segment's fields (an entry is made when it has none). */
  updateSegment(layer: string, id: SegmentId, patch: Partial<SegmentValue>): void {
    const key = segmentKey(layer, id)
    const old = this.segments.get(key)
    const value: SegmentValue = {
      name: null,
      color: null,
      anchor: null,
      groupId: null,
      metadata: {},
      isVisible: true,
      time: Date.now(),
      ...(old ?? {}),
      ...patch,
    }
    this.doc.transact(() => this.segments.set(key, value), 'segments')
  }

  groupsOf(layer: string): GroupValue[] {
    const out: GroupValue[] = []
    for (const [id, group] of this.groups) {
      if (!(group instanceof Y.Map) || group.get('layer') !== layer) continue
      const parent = group.get('parentId')
      out.push({ id, layer, name: String(group.get('name') ?? id), parentId: typeof parent === 'string' ? parent : null })
    }
    return out.sort((a, b) => a.name.localeCompare(b.name) || a.id.localeCompare(b.id))
  }

  createGroup(layer: string, name: string, parentId: string | null): string {
    const id = this.newId()
    this.doc.transact(() => {
      const group = new Y.Map<unknown>()
      group.set('layer', layer)
      group.set('name', name)
      group.set('parentId', parentId)
      group.set('isExpanded', true)
      this.groups.set(id, group)
    }, 'segments')
    return id
  }

  renameGroup(id: string, name: string): void {
    const group = this.groups.get(id)
    if (group instanceof Y.Map) this.doc.transact(() => group.set('name', name), 'segments')
  }

  /** Delete a group: its segments and subgroups move up to its parent. */
  deleteGroup(id: string): void {
    const group = this.groups.get(id)
    if (!(group instanceof Y.Map)) return
    const parent = (group.get('parentId') as string | null) ?? null
    this.doc.transact(() => {
      for (const [key, value] of this.segments) {
        if (value?.groupId === id) this.segments.set(key, { ...value, groupId: parent })
      }
      for (const other of this.groups.values()) {
        if (other instanceof Y.Map && other.get('parentId') === id) other.set('parentId', parent)
      }
      this.groups.delete(id)
    }, 'segments')
  }

  moveSegment(layer: string, id: SegmentId, groupId: string | null): void {
    this.updateSegment(layer, id, { groupId })
  }

  /** Move a group under ``parentId`` (never into itself or its own subgroups). */
  moveGroup(id: string, parentId: string | null): void {
    const group = this.groups.get(id)
    if (!(group instanceof Y.Map)) return
    for (let at = parentId, depth = 0; at !== null && depth < 64; depth++) {
      if (at === id) return
      const up = this.groups.get(at)
      at = up instanceof Y.Map ? ((up.get('parentId') as string | null) ?? null) : null
    }
    this.doc.transact(() => group.set('parentId', parentId), 'segments')
  }
}

/** A segment's key in `segments`: the id in decimal (exact for bigints too). */
export function segmentKey(layer: string, id: SegmentId): string {
  return `${layer}/${id}`
}
