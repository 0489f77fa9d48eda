// The proofreading tool's state machine (src/tools/proofread.ts): picks,
// merges and splits as requests with the active segment, refusals with the
// server's message, and undo of this page's own ops (their deletion from
// the document) in order with its strokes.
import { describe, expect, it } from 'vitest'
import * as Y from 'yjs'
import { ApiError } from '../src/api'
import type { MergeAnswer, SplitAnswer, Vec3 } from '../src/proofreading/requests'
import { SegmentationDoc } from '../src/segmentation/model'
import type { VoxelOp } from '../src/segmentation/ops'
import type { SegmentId } from '../src/segmentation/segment_id'
import { PageUndo } from '../src/sync/undo'
import { clickKind, Proofreader, type Requests } from '../src/tools/proofread'

/** A server that writes each accepted op into ``seg`` (as another origin) and answers. */
function fakeServer(seg: SegmentationDoc) {
  const sent: unknown[] = []
  let seq = 0
  let refuse: ApiError | null = null
  const write = (op: Record<string, unknown>): string => {
    seq += 1
    const key = `pr-${seq}`
    seg.doc.transact(() => seg.ops.set(key, op as unknown as VoxelOp), 'server')
    return key
  }
  const requests: Requests = {
    async merge(a: SegmentId, b: SegmentId, positions: Vec3[]): Promise<MergeAnswer> {
      sent.push({ merge: [a, b], positions })
      if (refuse) throw refuse
      return { op: write({ kind: 'merge', a, b }), version: seq, agglomerate: 1, merged: 2 }
    },
    async split(sources: SegmentId[], sinks: SegmentId[], positions: Vec3[]): Promise<SplitAnswer> {
      sent.push({ split: [sources, sinks], positions })
      if (refuse) throw refuse
      return { op: write({ kind: 'split', sources, sinks }), version: seq, agglomerate: 1, cut: [[2, 3]], agglomerates: [1, 4] }
    },
  }
  return { requests, sent, refuse: (e: ApiError | null) => (refuse = e) }
}

const stroke = (segment: number): VoxelOp => ({
  kind: 'brush', layer: 'L1', author: 1, time: 1, mag: '1', plane: 'xy',
  points: [[1, 1, 1]], radius: 2, segment, erase: false, mode: 'all',
})

function setup() {
  const seg = new SegmentationDoc(new Y.Doc())
  const server = fakeServer(seg)
  const tool = new Proofreader(server.requests, { has: (k) => seg.ops.has(k), delete: (k) => seg.deleteOp(k) })
  seg.ops.observe((event) => event.changes.keys.forEach((c, key) => c.action === 'add' && tool.seen(key)))
  const undo = new PageUndo({ segmentation: seg.undo }, { proofreading: tool })
  return { seg, server, tool, undo }
}

describe('the proofreading tool', () => {
  it('reads clicks as WEBKNOSSOS does', () => {
    const mods = (shiftKey: boolean, ctrlKey: boolean, metaKey = false) => ({ shiftKey, ctrlKey, metaKey })
    expect([clickKind(mods(false, false)), clickKind(mods(true, false)), clickKind(mods(false, true)), clickKind(mods(false, false, true))]).toEqual(
      ['pick', 'merge', 'split', 'split'],
    )
  })

  it('merges and splits from the active segment; refusals carry the server\'s message', async () => {
    const { server, tool } = setup()
    await tool.merge(9, [1, 2, 3])
    expect(server.sent).toEqual([]) // nothing active yet: nothing sent
    expect(tool.message).toMatchObject({ error: true })
    tool.pick(1, [12, 10, 17])
    expect(tool.active).toEqual({ supervoxel: 1, position: [12, 10, 17] })
    await tool.merge(9, [12, 50, 17])
    await tool.split(4, [80, 10, 17])
    expect(server.sent).toEqual([
      { merge: [1, 9], positions: [[12, 10, 17], [12, 50, 17]] },
      { split: [[1], [4]], positions: [[12, 10, 17], [80, 10, 17]] },
    ])
    expect(tool.message).toEqual({ text: 'split agglomerate 1: 1 edge(s) cut, 1 and 4', error: false })
    server.refuse(new ApiError(409, 'conflict', 'supervoxels 1 and 16 are one agglomerate already'))
    await tool.merge(16, [1, 1, 1])
    expect(tool.message).toEqual({ text: 'supervoxels 1 and 16 are one agglomerate already', error: true })
    expect(tool.busy).toBe(0)
  })

  it('undoes its own ops (deleted from the document) in order with strokes; never another\'s', async () => {
    const { seg, server, tool, undo } = setup()
    tool.pick(1, [0, 0, 0])
    await tool.merge(9, [0, 0, 0]) // pr-1
    const s1 = seg.write(stroke(5), [1, 1, 1])
    await tool.split(4, [0, 0, 0]) // pr-2
    server.refuse(new ApiError(409, 'conflict', 'no')) // refused: nothing to undo
    await tool.merge(16, [0, 0, 0])
    server.refuse(null)
    seg.doc.transact(() => seg.ops.set('pr-99', { kind: 'merge' } as unknown as VoxelOp), 'someone else')
    expect(undo.undo()).toBe('proofreading')
    expect(seg.ops.has('pr-2')).toBe(false)
    expect(undo.undo()).toBe('segmentation')
    expect(seg.ops.has(s1)).toBe(false)
    expect(undo.undo()).toBe('proofreading')
    expect([...seg.ops.keys()]).toEqual(['pr-99'])
    expect(undo.undo()).toBeNull()
    // The undone op's deletion is not a stroke's undo: the stroke comes back on redo, the op is asked for again.
    expect(undo.redo()).toBe('proofreading')
    await Promise.resolve()
    await Promise.resolve()
    expect(server.sent.at(-1)).toEqual({ merge: [1, 9], positions: [[0, 0, 0], [0, 0, 0]] })
    expect(undo.redo()).toBe('segmentation')
    expect(seg.ops.has(s1)).toBe(true)
  })

  it('deletes an op undone before its answer or the document brought it, once it is there', async () => {
    const seg = new SegmentationDoc(new Y.Doc())
    let answer: (a: MergeAnswer) => void = () => undefined
    const tool = new Proofreader(
      {
        merge: () => new Promise<MergeAnswer>((resolve) => (answer = resolve)),
        split: () => Promise.reject(new Error('unused')),
      },
      { has: (k) => seg.ops.has(k), delete: (k) => seg.deleteOp(k) },
    )
    seg.ops.observe((event) => event.changes.keys.forEach((c, key) => c.action === 'add' && tool.seen(key)))
    tool.pick(1, [0, 0, 0])
    const pending = tool.merge(9, [0, 0, 0])
    expect(tool.undo()).toBe(true) // not answered yet
    answer({ op: 'pr-7', version: 3, agglomerate: 1, merged: 2 })
    await pending
    expect(tool.busy).toBe(0)
    // The answer came before the document had the op: it goes when the op arrives.
    seg.doc.transact(() => seg.ops.set('pr-7', { kind: 'merge' } as unknown as VoxelOp), 'server')
    expect(seg.ops.has('pr-7')).toBe(false)
    expect(seg.undo.undoStack.length).toBe(0) // no Y.UndoManager took the deletion
  })
})
