// Segment ids as the page holds them. A uint64 layer's voxels come as
// BigUint64Array (bigint), every other layer's as numbers, and the document
// keys segments by decimal strings. One form per id, so that maps, sets and
// comparisons agree whichever way an id arrived: a number up to 2^53 − 1
// (every id an op can paint: docs/schema.md), a bigint above (shown and
// coloured, never painted). Pure: client/test/segment_id.test.ts.

export type SegmentId = number | bigint

const SAFE = BigInt(Number.MAX_SAFE_INTEGER)
const UINT64_END = 1n << 64n

/** The one form of an id: a number when it fits exactly, else the bigint. */
export function segmentId(value: number | bigint): SegmentId {
  return typeof value === 'bigint' && value <= SAFE ? Number(value) : value
}

/** An id from its decimal string (a key of `segments`, an input); null when it is none. */
export function parseSegmentId(text: string): SegmentId | null {
  if (!/^[0-9]{1,20}$/.test(text)) return null
  const value = BigInt(text)
  return value < UINT64_END ? segmentId(value) : null
}

/** Ascending, numbers and bigints alike. */
export function compareSegmentIds(a: SegmentId, b: SegmentId): number {
  return a < b ? -1 : a > b ? 1 : 0
}

/** Whether an op can paint the id (a JSON number: up to 2^53 − 1). */
export function paintable(id: SegmentId): id is number {
  return typeof id === 'number'
}
