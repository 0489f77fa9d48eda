// Segment ids above 2^53 (uint64 layers): one exact form per id, listed in
// decimal, painted over by the preview like any other brick's voxels.
import { describe, expect, it } from 'vitest'
import * as Y from 'yjs'
import { SegmentationDoc } from '../src/segmentation/model'
import { type BrushOp, paintBrush } from '../src/segmentation/ops'
import { compareSegmentIds, paintable, parseSegmentId, segmentId } from '../src/segmentation/segment_id'
import { segmentName } from '../src/pages/segment_list'
import { segmentColour } from '../src/volume/layers'

const value = { name: null, color: null, anchor: null, groupId: null, metadata: {}, isVisible: true, time: 1 }

describe('segment ids', () => {
  it('holds an id as a number while it is exact, else as a bigint', () => {
    expect(segmentId(9_007_199_254_740_991n)).toBe(Number.MAX_SAFE_INTEGER)
    expect(segmentId(9_007_199_254_740_992n)).toBe(9_007_199_254_740_992n)
    expect(segmentId(12)).toBe(12)
    expect(parseSegmentId('18446744073709551615')).toBe(2n ** 64n - 1n)
    expect(parseSegmentId('42')).toBe(42)
    for (const bad of ['18446744073709551616', '-1', '1.5', '', 'x1', '1e3']) expect(parseSegmentId(bad)).toBeNull()
    expect([2n ** 60n, 3, 2n ** 54n, 1].sort(compareSegmentIds)).toEqual([1, 3, 2n ** 54n, 2n ** 60n])
    expect([paintable(3), paintable(2n ** 60n)]).toEqual([true, false])
  })

  it('lists segments of a uint64 layer with their exact ids, in order', () => {
    const seg = new SegmentationDoc(new Y.Doc())
    for (const id of ['18446744073709551615', '9007199254740993', '7', 'junk']) seg.segments.set(`L1/${id}`, value)
    const listed = seg.segmentsOf('L1')
    expect(listed.map(([id]) => String(id))).toEqual(['7', '9007199254740993', '18446744073709551615'])
    expect(listed.map(([id]) => segmentName(id, undefined))).toEqual([
      'Segment 7',
      'Segment 9007199254740993',
      'Segment 18446744073709551615',
    ])
    // Edited through the same key; its colour is its hashed one wherever it shows.
    seg.updateSegment('L1', 2n ** 64n - 1n, { name: 'big' })
    expect(seg.segment('L1', 18446744073709551615n)?.name).toBe('big')
    expect(segmentColour(listed[2][0])).toBe(segmentColour(2n ** 64n - 1n))
  })

  it('paints a stroke over uint64 voxels (the preview) without touching the others', () => {
    const op: BrushOp = {
      kind: 'brush', layer: 'L1', author: 1, time: 1, mag: '1', plane: 'xy',
      points: [[5, 5, 2]], radius: 2, segment: 9, erase: false, mode: 'empty',
    }  // prettier-ignore
    const voxels = new BigUint64Array(32 ** 3).fill(2n ** 63n)
    voxels[5 + 32 * (6 + 32 * 2)] = 0n
    expect(paintBrush(op, [1, 1, 1], [0, 0, 0], voxels)).toBe(true)
    expect(voxels[5 + 32 * (6 + 32 * 2)]).toBe(9n) // an empty voxel: painted
    expect(voxels[5 + 32 * (5 + 32 * 2)]).toBe(2n ** 63n) // not empty: kept
    expect(paintBrush({ ...op, mode: 'all' }, [1, 1, 1], [0, 0, 0], voxels)).toBe(true)
    expect(voxels[5 + 32 * (5 + 32 * 2)]).toBe(9n)
    expect(voxels[20 + 32 * (20 + 32 * 2)]).toBe(2n ** 63n)
  })
})
