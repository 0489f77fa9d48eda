// Colour by agglomerate (src/proofreading/agglomerates.ts): unknown
// supervoxels looked up in bounded batches after a pause, MAPPED pairs
// applied, the newer of a lookup and a push winning, resets looking up
// again; and exact uint64 ids in the requests' JSON (requests.ts).
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import {
  AgglomerateMap,
  agglomerateColour,
  GATHER_MS,
  HIGHLIGHT_ALPHA,
  highlighted,
  LOOKUP_MAX,
  type Lookup,
  RETRY_MS,
} from '../src/proofreading/agglomerates'
import { asId, parseConnectome, parseWithIds, stringifyWithIds } from '../src/proofreading/requests'
import type { SegmentId } from '../src/segmentation/segment_id'
import { segmentColour } from '../src/volume/layers'

/** A server's mapping: lookups answer from it at its version; calls are recorded. */
function server(mapping: Map<SegmentId, SegmentId>) {
  const calls: SegmentId[][] = []
  let version = 1
  const waiting: (() => void)[] = []
  let hold = false
  const lookup: Lookup = async (ids) => {
    calls.push(ids)
    const answer = { agglomerates: ids.map((id) => mapping.get(id) ?? 0), version }
    if (hold) await new Promise<void>((resolve) => waiting.push(resolve))
    return answer
  }
  return {
    lookup,
    calls,
    setVersion: (v: number) => (version = v),
    hold: (on: boolean) => (hold = on),
    release: () => waiting.splice(0).forEach((r) => r()),
  }
}

const pairs = (...p: [number | bigint, number | bigint][]) => new BigUint64Array(p.flat().map((v) => BigInt(v)))

describe('agglomerate colours', () => {
  beforeEach(() => vi.useFakeTimers())
  afterEach(() => vi.useRealTimers())

  it('looks up a brick\'s unknown supervoxels in one batch after a pause, then colours by agglomerate', async () => {
    const s = server(new Map([[1, 1], [2, 1], [9, 2]]))
    const map = new AgglomerateMap(s.lookup)
    let changes = 0
    map.onChange = () => (changes += 1)
    const brick = new Uint32Array(32 ** 3)
    brick.fill(1, 0, 100)
    brick.fill(2, 100, 5000)
    brick.fill(9, 5000, 6000) // the rest 0: no segment, never asked
    map.scan(brick)
    map.scan(brick) // the same again: nothing more asked
    const colour = agglomerateColour(map, segmentColour, null)
    expect(colour(1)).toBe(0) // not known yet: not drawn
    expect(s.calls).toEqual([])
    await vi.advanceTimersByTimeAsync(GATHER_MS)
    expect(s.calls).toEqual([[1, 2, 9]])
    expect(changes).toBeGreaterThan(0)
    expect([colour(1), colour(2), colour(9)]).toEqual([segmentColour(1), segmentColour(1), segmentColour(2)])
    // The active agglomerate's supervoxels are highlighted; unknown to the mapping: its own colour.
    const active = agglomerateColour(map, segmentColour, 1)
    expect(active(2)).toBe(highlighted(segmentColour(1)))
    expect(active(2) >>> 24).toBe(HIGHLIGHT_ALPHA)
    expect(active(9)).toBe(segmentColour(2))
    map.want(77)
    await vi.advanceTimersByTimeAsync(GATHER_MS)
    expect(map.peek(77)).toBe(0)
    expect(colour(77)).toBe(segmentColour(77))
    expect(map.lookups).toBe(2)
  })

  it('asks at most LOOKUP_MAX ids a request, one request at a time', async () => {
    const s = server(new Map())
    const map = new AgglomerateMap(s.lookup)
    s.hold(true)
    for (let id = 1; id <= LOOKUP_MAX + 10; id++) map.want(id)
    await vi.advanceTimersByTimeAsync(GATHER_MS)
    expect(s.calls.map((c) => c.length)).toEqual([LOOKUP_MAX])
    map.want(LOOKUP_MAX + 11)
    await vi.advanceTimersByTimeAsync(GATHER_MS * 5)
    expect(s.calls.length).toBe(1) // the first is still out
    s.hold(false)
    s.release()
    await vi.advanceTimersByTimeAsync(GATHER_MS)
    expect(s.calls.map((c) => c.length)).toEqual([LOOKUP_MAX, 11])
    expect(map.size).toBe(LOOKUP_MAX + 11)
  })

  it('applies MAPPED pairs to what it knows; a push newer than a lookup crossing it wins', async () => {
    const mapping = new Map<SegmentId, SegmentId>([[1, 1], [9, 2], [10, 2]])
    const s = server(mapping)
    const map = new AgglomerateMap(s.lookup)
    map.want(1)
    map.want(9)
    await vi.advanceTimersByTimeAsync(GATHER_MS)
    const revision = map.revision
    // Someone merges 9's agglomerate into 1's (version 5): 9 and 10 move; 10 is not known here.
    map.applyMapped({ version: 5, reset: false, pairs: pairs([9, 1], [10, 1]) })
    expect([map.peek(9), map.peek(10)]).toEqual([1, undefined])
    expect(map.revision).toBeGreaterThan(revision)
    expect(map.version).toBe(5)
    // A lookup of 10 answered at version 4 (before the merge) arrives after a push of version 6.
    s.setVersion(4)
    s.hold(true)
    map.want(10)
    await vi.advanceTimersByTimeAsync(GATHER_MS)
    map.applyMapped({ version: 6, reset: false, pairs: pairs([10, 1]) }) // 10 is on its way: kept
    s.release()
    await vi.advanceTimersByTimeAsync(0)
    expect(map.peek(10)).toBe(1) // the push of version 6, not the answer of version 4
  })

  it('on a reset looks up again everything known, showing what it had meanwhile', async () => {
    const mapping = new Map<SegmentId, SegmentId>([[1, 1], [2, 1]])
    const s = server(mapping)
    const map = new AgglomerateMap(s.lookup)
    map.want(1)
    map.want(2)
    await vi.advanceTimersByTimeAsync(GATHER_MS)
    mapping.set(2, 3) // a split this page missed
    s.setVersion(8)
    map.applyMapped({ version: 8, reset: true, pairs: pairs() })
    expect(map.peek(2)).toBe(1) // still shown as it was
    await vi.advanceTimersByTimeAsync(0)
    expect(s.calls.at(-1)).toEqual([1, 2])
    expect(map.peek(2)).toBe(3)
    // Another mapping: all forgotten.
    map.clear()
    expect(map.peek(1)).toBeUndefined()
  })

  it('retries a failed lookup later, backing off', async () => {
    let fail = true
    const calls: SegmentId[][] = []
    const map = new AgglomerateMap(async (ids) => {
      calls.push(ids)
      if (fail) throw new Error('layer has no active mapping')
      return { agglomerates: ids.map(() => 4), version: 2 }
    })
    map.want(5)
    await vi.advanceTimersByTimeAsync(GATHER_MS)
    expect(map.error).toBe('layer has no active mapping')
    await vi.advanceTimersByTimeAsync(RETRY_MS)
    expect(calls.length).toBe(2)
    fail = false
    await vi.advanceTimersByTimeAsync(RETRY_MS * 2)
    expect(calls.length).toBe(3)
    expect([map.peek(5), map.error]).toEqual([4, null])
  })

  it('keeps uint64 ids exact in both directions', async () => {
    const big = 2n ** 64n - 1n
    const s = server(new Map<SegmentId, SegmentId>([[2n ** 53n + 1n, big]]))
    const map = new AgglomerateMap(s.lookup)
    map.scan(new BigUint64Array([0n, 2n ** 53n + 1n, 7n]))
    await vi.advanceTimersByTimeAsync(GATHER_MS)
    expect(s.calls).toEqual([[2n ** 53n + 1n, 7]])
    expect(map.peek(2n ** 53n + 1n)).toBe(big)
    expect(stringifyWithIds({ segments: [7, 2n ** 53n + 1n] })).toBe('{"segments":[7,9007199254740993]}')
    const answer = parseWithIds('{"segments": [7, 9007199254740993], "agglomerates":[1234567890123456,18446744073709551615],"version":3}') as Record<string, unknown[]>
    expect(answer.agglomerates.map(asId)).toEqual([1234567890123456, big])
    const c = parseConnectome(parseWithIds(
      '{"agglomerate": 3, "supervoxels": 16, "total": 2, "partners": [{"agglomerate": 1, "out": 1, "in": 0, "total": 1}],' +
      ' "synapses": [{"id": 1, "position": [80, 20, 34], "direction": "in", "segment": 20, "partnerSegment": 4, "partner": 1, "type": "excitatory"}], "version": 4}',
    ))
    expect(c.partners).toEqual([{ agglomerate: 1, out: 1, in: 0, total: 1 }])
    expect(c.synapses[0]).toMatchObject({ position: [80, 20, 34], direction: 'in', partner: 1 })
  })
})
