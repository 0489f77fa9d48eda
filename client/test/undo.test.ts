// The page's undo across its documents: only its own edits, latest first,
// whichever document they went to; a new edit forgets what was undone.
import { describe, expect, it } from 'vitest'
import * as Y from 'yjs'
import { LOCAL as SEG_LOCAL, SegmentationDoc } from '../src/segmentation/model'
import type { VoxelOp } from '../src/segmentation/ops'
import { LOCAL as SK_LOCAL, SkeletonDoc } from '../src/skeleton/model'
import { PageUndo } from '../src/sync/undo'

const op = (segment: number): VoxelOp => ({
  kind: 'brush', layer: 'L1', author: 1, time: 1, mag: '1', plane: 'xy',
  points: [[1, 1, 1]], radius: 2, segment, erase: false, mode: 'all',
})

describe('undo across documents', () => {
  it('undoes my last edit, whichever document it was in, never a remote one', () => {
    const sk = new SkeletonDoc(new Y.Doc())
    const seg = new SegmentationDoc(new Y.Doc())
    const undo = new PageUndo({ skeleton: sk.undo, segmentation: seg.undo })
    const stroke = seg.write(op(5), [1, 1, 1])
    const node = sk.addNode([1, 2, 3], null, null)
    const second = seg.write(op(6), [2, 2, 2])
    // Someone else's op arrives (another origin): never undone here.
    const remote = new Y.Doc()
    remote.getMap('ops').set('other-1', op(9))
    Y.applyUpdate(seg.doc, Y.encodeStateAsUpdate(remote), 'remote')
    expect(undo.undo()).toBe('segmentation')
    expect([...seg.ops.keys()].sort()).toEqual([stroke, 'other-1'].sort())
    expect(seg.segment('L1', 6)).toBeDefined() // its entry stays: listed once painted
    expect(undo.undo()).toBe('skeleton')
    expect(sk.nodes.has(node)).toBe(false)
    expect(undo.redo()).toBe('skeleton')
    expect(sk.nodes.size).toBe(1)
    expect(undo.undo()).toBe('skeleton')
    expect(undo.undo()).toBe('segmentation')
    expect([...seg.ops.keys()]).toEqual(['other-1'])
    expect(undo.undo()).toBeNull()
    expect(undo.redo()).toBe('segmentation')
    expect(seg.ops.has(stroke)).toBe(true)
    // A new edit forgets the redo of the rest.
    seg.write(op(7), null)
    expect(undo.canRedo).toBe(false)
    expect(SK_LOCAL).not.toBe(SEG_LOCAL)
  })
})
