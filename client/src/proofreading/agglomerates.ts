// The editable mapping of the annotation's volume layer as the page knows
// it (docs/api.md, "Proofreading"): each supervoxel's agglomerate, for the
// supervoxels the page has seen. Bricks carry supervoxel ids; the planes
// colour each by its agglomerate. Ids of arriving bricks and of drawn
// pixels that are not known yet are looked up in batches (POST
// …/agglomerates: at most 65,536 a request, one request at a time, after a
// short pause that gathers a frame's misses), MAPPED frames (merges,
// splits, undos of anyone's) replace what they name, and a reset (frames
// missed, the socket lost) looks up again everything known while what it
// had stays shown. Versions decide between a lookup's answer and a MAPPED
// frame that cross: the newer wins per supervoxel.
//
// Kept in maps keyed by id (numbers; bigints above 2^53), never an object
// per voxel; past KNOWN_MAX ids all is forgotten and what is shown is
// asked again. Pure apart from the lookup and the timer it is handed:
// client/test/agglomerates.test.ts.

import { type SegmentId, segmentId } from '../segmentation/segment_id'
import type { BrickData } from '../volume/brick_cache'
import type { Mapped } from '../volume/wire'

/** Each id's agglomerate in the mapping as of ``version`` (0: in none). */
export type Lookup = (ids: SegmentId[]) => Promise<{ agglomerates: SegmentId[]; version: number }>

/** Ids one lookup names (the server's bound). */
export const LOOKUP_MAX = 65_536
/** Supervoxels kept; past it the map starts again (what is drawn is asked again). */
export const KNOWN_MAX = 1 << 20
/** Ids waiting for a lookup; more are dropped (drawing asks for them again). */
export const PENDING_MAX = 1 << 18
/** How long misses gather before a lookup goes (a frame's worth). */
export const GATHER_MS = 20
/** The first wait after a failed lookup, doubled up to RETRY_MAX_MS. */
export const RETRY_MS = 1000
export const RETRY_MAX_MS = 30_000

export class AgglomerateMap {
  private readonly agglomerates = new Map<SegmentId, SegmentId>()
  /** The mapping version each known agglomerate is as of. */
  private readonly versions = new Map<SegmentId, number>()
  private pending = new Set<SegmentId>()
  private readonly inFlight = new Set<SegmentId>()
  private timer: ReturnType<typeof setTimeout> | null = null
  private busy = false
  private retry = 0
  /** Changes on clear: answers to lookups sent before are dropped. */
  private generation = 0
  private closed = false
  /** Changes whenever an agglomerate the page knows changes (views recolour). */
  revision = 0
  /** Counts MAPPED frames and resets: the mapping changed (the connectome is asked again). */
  changes = 0
  /** The newest mapping version the page has heard of. */
  version = 0
  /** Why the last lookup failed (null: it did not). */
  error: string | null = null
  /** Lookups sent (shown nowhere; tests and the console read it). */
  lookups = 0
  onChange: () => void = () => undefined

  constructor(private readonly lookup: Lookup) {}

  get size(): number {
    return this.agglomerates.size
  }

  /** The supervoxel's agglomerate (0: none); undefined: not known yet (then looked up). */
  get(id: SegmentId): SegmentId | undefined {
    const found = this.agglomerates.get(id)
    if (found === undefined) this.want(id)
    return found
  }

  /** Known without asking. */
  peek(id: SegmentId): SegmentId | undefined {
    return this.agglomerates.get(id)
  }

  /** Look the supervoxel up (unless known or on its way). */
  want(id: SegmentId): void {
    if (id === 0 || this.agglomerates.has(id) || this.pending.has(id) || this.inFlight.has(id)) return
    if (this.pending.size >= PENDING_MAX) return
    this.pending.add(id)
    this.schedule(GATHER_MS)
  }

  /** The supervoxels of a brick that arrived: those not known are looked up. */
  scan(voxels: Exclude<BrickData, null>): void {
    let last: number | bigint = 0
    for (let i = 0; i < voxels.length; i++) {
      const v = voxels[i]
      if (v === last) continue
      last = v
      if (v) this.want(typeof v === 'bigint' ? segmentId(v) : v)
    }
  }

  /** A MAPPED frame: its pairs replace what the page knows; a reset looks everything up again. */
  applyMapped(mapped: Mapped): void {
    this.version = Math.max(this.version, mapped.version)
    this.changes += 1
    const pairs = mapped.pairs
    let changed = false
    for (let i = 0; i + 1 < pairs.length; i += 2) {
      const id = segmentId(pairs[i])
      // Only what the page holds or asked for: a merge may name a million supervoxels.
      if (!this.agglomerates.has(id) && !this.inFlight.has(id)) continue
      changed = this.set(id, segmentId(pairs[i + 1]), mapped.version) || changed
    }
    if (mapped.reset) this.lookUpAgain()
    if (changed) this.revision += 1
    this.onChange()
  }

  /** Everything known is looked up again (shown as it was meanwhile). */
  lookUpAgain(): void {
    if (this.agglomerates.size > PENDING_MAX) {
      this.clear()
      return
    }
    // Asked again even when on their way: that answer may predate what was missed.
    for (const id of this.agglomerates.keys()) this.pending.add(id)
    // What was known before is as old as anything: any answer may replace it.
    this.versions.clear()
    if (this.pending.size) this.schedule(0)
  }

  /** Forget everything (another mapping): answers still on their way are dropped. */
  clear(): void {
    this.generation += 1
    this.changes += 1
    this.agglomerates.clear()
    this.versions.clear()
    this.pending.clear()
    this.inFlight.clear()
    this.changed()
  }

  /** Stop: no more lookups. */
  close(): void {
    this.clear()
    if (this.timer !== null) clearTimeout(this.timer)
    this.timer = null
    this.closed = true
  }

  private set(id: SegmentId, agglomerate: SegmentId, version: number): boolean {
    if ((this.versions.get(id) ?? -1) > version) return false // a newer one is known
    this.versions.set(id, version)
    if (this.agglomerates.get(id) === agglomerate) return false
    if (!this.agglomerates.has(id) && this.agglomerates.size >= KNOWN_MAX) {
      this.agglomerates.clear()
      this.versions.clear()
      this.versions.set(id, version)
    }
    this.agglomerates.set(id, agglomerate)
    return true
  }

  private changed(): void {
    this.revision += 1
    this.onChange()
  }

  private schedule(ms: number): void {
    if (this.timer !== null || this.busy || this.closed) return
    this.timer = setTimeout(() => {
      this.timer = null
      void this.flush()
    }, ms)
  }

  private async flush(): Promise<void> {
    if (this.busy || !this.pending.size || this.closed) return
    const ids: SegmentId[] = []
    for (const id of this.pending) {
      ids.push(id)
      if (ids.length === LOOKUP_MAX) break
    }
    for (const id of ids) {
      this.pending.delete(id)
      this.inFlight.add(id)
    }
    this.busy = true
    this.lookups += 1
    const generation = this.generation
    let failed = false
    try {
      const answer = await this.lookup(ids)
      if (generation === this.generation) {
        this.version = Math.max(this.version, answer.version)
        let changed = false
        ids.forEach((id, i) => {
          const agglomerate = answer.agglomerates[i]
          if (agglomerate !== undefined) changed = this.set(id, agglomerate, answer.version) || changed
        })
        this.error = null
        this.retry = 0
        if (changed) this.revision += 1
      }
    } catch (error) {
      failed = true
      if (generation === this.generation) {
        this.error = error instanceof Error ? error.message : String(error)
        this.retry = Math.min(RETRY_MAX_MS, this.retry ? this.retry * 2 : RETRY_MS)
        for (const id of ids) if (!this.agglomerates.has(id) && this.pending.size < PENDING_MAX) this.pending.add(id)
      }
    } finally {
      if (generation === this.generation) for (const id of ids) this.inFlight.delete(id)
      this.busy = false
    }
    this.onChange()
    if (this.pending.size) this.schedule(failed ? this.retry : 0)
  }
}

/** The texel alpha byte of a highlighted segment (volume_gl.ts draws it more opaque). */
export const HIGHLIGHT_ALPHA = 0x80

/** An RGBA word marked as highlighted (the active agglomerate's supervoxels). */
export function highlighted(rgba: number): number {
  return rgba === 0 ? 0 : ((rgba & 0x00ffffff) | (HIGHLIGHT_ALPHA << 24)) >>> 0
}

/**
 * The colour of a supervoxel coloured by its agglomerate: ``colourOf`` the
 * agglomerate (a segment's look, else its hashed colour), highlighted when
 * it is ``active``; 0 (not drawn) while it is being looked up; an id the
 * mapping does not hold (agglomerate 0, e.g. painted with a new segment id)
 * in its own colour.
 */
export function agglomerateColour(
  map: AgglomerateMap,
  colourOf: (id: SegmentId) => number,
  active: SegmentId | null,
): (value: number | bigint) => number {
  return (value) => {
    const id = segmentId(value)
    const agglomerate = map.get(id)
    if (agglomerate === undefined) return 0
    if (agglomerate === 0) return colourOf(id)
    const rgba = colourOf(agglomerate)
    return agglomerate === active ? highlighted(rgba) : rgba
  }
}
