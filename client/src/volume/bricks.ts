// Bricks of one layer over the brick socket (docs/protocol.md, "Bricks"):
// a cache under a memory budget (least recently used out), requests ordered
// by distance to the view centre, bricks that left the view cancelled. An
// annotation's volume layer comes over its /volume socket, the same frames
// plus PUSHED: bricks a new version changed replace the cached ones, and
// this page's strokes not painted yet show over them (./preview.ts). A
// brick pushed as a stale mark (the server held its limit of pushes for
// this page: docs/protocol.md) keeps showing what it had until the page,
// having asked for it again, has its newest voxels.

import { BrickCache, type BrickData, brickKey } from './brick_cache'
import type { Decoded, DecodedBrick } from './brick_decode'
import { type SegmentId, segmentId } from '../segmentation/segment_id'
import type { Preview } from './preview'
import {
  type Coord,
  DTYPE_UINT8,
  DTYPE_UINT16,
  DTYPE_UINT32,
  DTYPE_UINT64,
  ENCODING_RAW,
  type Mapped,
  packCancel,
  packRequest,
  STATUS_STALE,
} from './wire'

export type { BrickData } from './brick_cache'

export const BRICK = 32

export interface Mag {
  name: string // as the server names it: "1", "2-2-1"
  factor: Coord
}

export function parseMag(name: string): Mag {
  const parts = name.split('-').map(Number)
  const factor = (parts.length === 1 ? [parts[0], parts[0], parts[0]] : parts) as Coord
  return { name, factor }
}

/** A mag's name from its factors, as the server writes them ("2", "2-2-1"). */
export function magName(factor: Coord): string {
  return factor[0] === factor[1] && factor[1] === factor[2] ? String(factor[0]) : factor.join('-')
}

const key = (mag: Mag, b: Coord) => brickKey(mag.name, b)

/** A record's voxels as the typed array of its dtype (little-endian, as every page's CPU). */
export const TYPED: Record<number, (b: ArrayBuffer) => Exclude<BrickData, null>> = {
  [DTYPE_UINT8]: (b) => new Uint8Array(b),
  [DTYPE_UINT16]: (b) => new Uint16Array(b),
  [DTYPE_UINT32]: (b) => new Uint32Array(b),
  [DTYPE_UINT64]: (b) => new BigUint64Array(b),
}

/** A decoded record's voxels in the cache's form; null: none, or a dtype the page does not draw. */
export function typedVoxels(dtype: number, voxels: ArrayBuffer | null): BrickData {
  const typed = TYPED[dtype]
  return voxels && typed ? typed(voxels) : null
}

/** The value at mag-1 voxel ``p`` in ``source`` at ``mag`` (a segment id: a
 *  bigint above 2^53); undefined: not loaded (null brick: 0). */
export function voxelAt(source: BrickSource, mag: Mag, p: Coord): SegmentId | undefined {
  const v = p.map((c, a) => Math.floor(c / mag.factor[a])) as Coord
  const brick = v.map((c) => Math.floor(c / BRICK)) as Coord
  const data = source.get(mag, brick)
  if (data === undefined) return undefined
  if (data === null) return 0
  const [i, j, k] = v.map((c, a) => c - brick[a] * BRICK)
  return segmentId(data[i + BRICK * (j + BRICK * k)])
}

let sources = 0

export class BrickSource {
  /** Which source this is (views tell one layer's bricks from another's). */
  readonly serial = ++sources
  /** The socket lives in a worker (./brick_worker.ts), which decodes frames off the main thread. */
  private readonly worker: Worker
  private open = false
  private closed = false
  private readonly cache: BrickCache
  private readonly pending = new Map<string, number>() // key -> request id
  private nextRequest = 1
  private readonly openRequests = new Map<number, { mag: Mag; keys: Set<string> }>()
  private queue: Uint8Array[] = []
  private wanted = new Map<string, { mag: Mag; brick: Coord; distance: number }>()
  /** The agglomerate mapping bricks go through (segmentation layers); null: none. */
  private mapping: string | null = null
  /** Changes whenever a brick arrives or the cache is dropped (views redraw their tiles). */
  version = 0
  /** Changes only when cached bricks stop being valid (another mapping). */
  epoch = 0
  /** Bricks asked for and not answered yet (shown on the page). */
  outstanding = 0
  errors = 0
  onBrick: () => void = () => undefined
  /** A PUSHED frame arrived: the version and the bricks it replaced. */
  onPushed: (version: number, keys: string[]) => void = () => undefined
  /** A MAPPED frame arrived (the layer's editable mapping changed); or, as a
   *  reset of version 0, a live socket was lost (what was pushed meanwhile is missed). */
  onMapped: (mapped: Mapped) => void = () => undefined
  /** A brick's voxels arrived (answered or pushed). */
  onVoxels: (voxels: Exclude<BrickData, null>) => void = () => undefined
  /** This page's strokes shown over the bricks until the server's arrive. */
  preview: Preview | null = null
  /** Per brick replaced since it was first cached (pushed): views upload it again. */
  private readonly replaced = new Map<string, number>()
  /** Mags by their factors ("2,2,1"), as asked for: pushed frames name a mag by them. */
  private readonly magsSeen = new Map<string, Mag>()
  /** Bricks pushed as stale marks: what is cached for them is old; they are
   *  asked for again while wanted. Per key the version they changed in, and
   *  the first request id sent after the mark (an answer to an earlier
   *  request may have been read before the change). */
  private readonly stale = new Map<string, { version: number; after: number }>()

  /**
   * ``encoding``: how bricks travel. Segmentation ids compress ~30:1 with
   * zstd (128 KiB a uint32 brick raw), so their layers ask for zstd (fzstd
   * decodes it in the page); EM greyscale barely compresses and goes raw.
   * Measured: the demo's first view took 5.5–6.2 s with raw segmentation,
   * 0.9–2.5 s without it (docs/performance.md).
   */
  /** ``path``: the socket, ``/data/{dataset}/{layer}`` or (``live``: bricks
   *  change while shown) ``/volume/{annotation}/{layer}``. */
  constructor(
    readonly path: string,
    readonly token: string,
    readonly encoding = ENCODING_RAW,
    readonly budgetBytes = 256 * 1024 * 1024,
    readonly live = false,
  ) {
    this.cache = new BrickCache(budgetBytes)
    this.worker = new Worker(new URL('./brick_worker.ts', import.meta.url), { type: 'module' })
    this.worker.onmessage = (event) => this.fromWorker(event.data)
    this.connect()
  }

  private connect(): void {
    const scheme = location.protocol === 'https:' ? 'wss' : 'ws'
    const url = `${scheme}://${location.host}${this.path}?token=${encodeURIComponent(this.token)}`
    this.worker.postMessage({ connect: url })
  }

  private fromWorker(message: Decoded | { open: true } | { closed: true }): void {
    if ('open' in message) {
      this.open = true
      for (const frame of this.queue) this.worker.postMessage({ send: frame }, [frame.buffer])
      this.queue = []
    } else if ('closed' in message) {
      // Whatever was asked is asked again by the next view update.
      this.open = false
      this.pending.clear()
      this.openRequests.clear()
      this.outstanding = 0
      // A live layer missed what was pushed meanwhile: its bricks are asked
      // for again, and the agglomerates of what it shows are looked up again.
      if (this.live) {
        this.dropCache()
        this.onMapped({ version: 0, reset: true, pairs: new BigUint64Array(0) })
      }
      if (!this.closed) setTimeout(() => this.closed || this.connect(), 500 + Math.random() * 1000)
    } else this.receive(message)
  }

  private send(frame: Uint8Array): void {
    if (this.open) this.worker.postMessage({ send: frame }, [frame.buffer])
    else this.queue.push(frame)
  }

  /** Change the mapping: what is cached or asked for under the old one goes. */
  setMapping(mapping: string | null): void {
    if (mapping === this.mapping) return
    this.mapping = mapping
    for (const [requestId, { keys }] of this.openRequests) {
      this.send(packCancel(requestId))
      this.outstanding -= keys.size
    }
    this.openRequests.clear()
    this.pending.clear()
    this.dropCache()
  }

  private dropCache(): void {
    this.cache.clear()
    this.replaced.clear()
    this.stale.clear()
    this.version += 1
    this.epoch += 1
  }

  /** A brick's voxels as shown (this page's pending strokes over them);
   *  undefined: not here yet; null: the layer has none there. */
  get(mag: Mag, brick: Coord): BrickData | undefined {
    const k = key(mag, brick)
    const data = this.cache.get(k)
    return data && this.preview?.touches(k) ? this.preview.compose(k, data) : data
  }

  /** Changes when what :meth:`get` gives for the brick changes (pushed, previewed). */
  revision(mag: Mag, brick: Coord): string {
    const k = key(mag, brick)
    return `${this.replaced.get(k) ?? 0}.${this.preview?.revision(k) ?? 0}`
  }

  /** Bricks one view needs (a plane at one mag); :meth:`flush` asks for them all,
   *  nearest ``centre`` first; ``after`` puts a group behind the others (prefetch). */
  want(mag: Mag, bricks: Coord[], centre: Coord, after = 0): void {
    if (!this.magsSeen.has(mag.factor.join(','))) this.magsSeen.set(mag.factor.join(','), mag)
    for (const b of bricks) {
      const k = key(mag, b)
      const d = after + (b[0] - centre[0]) ** 2 + (b[1] - centre[1]) ** 2 + (b[2] - centre[2]) ** 2
      const known = this.wanted.get(k)
      if (!known || d < known.distance) this.wanted.set(k, { mag, brick: b, distance: d })
    }
  }

  /** After a frame: ask for what its views want (nearest first, per mag) and
   *  cancel what none of them wants any more. */
  flush(): void {
    const wanted = this.wanted
    this.wanted = new Map()
    for (const [requestId, { keys }] of this.openRequests) {
      const gone = [...keys].filter((k) => !wanted.has(k))
      if (!gone.length) continue
      this.send(packCancel(requestId, gone.map((k) => k.split('/').slice(1).map(Number) as Coord)))
      for (const k of gone) {
        keys.delete(k)
        this.pending.delete(k)
        this.outstanding -= 1
      }
    }
    // Marked stale and out of view: forgotten (asked for when wanted again).
    for (const k of this.stale.keys()) {
      if (wanted.has(k) || this.pending.has(k)) continue
      this.stale.delete(k)
      this.cache.delete(k)
    }
    const byMag = new Map<string, { mag: Mag; items: { brick: Coord; distance: number }[] }>()
    for (const [k, item] of wanted) {
      if ((this.cache.has(k) && !this.stale.has(k)) || this.pending.has(k)) continue
      const group = byMag.get(item.mag.name) ?? { mag: item.mag, items: [] }
      group.items.push(item)
      byMag.set(item.mag.name, group)
    }
    for (const { mag, items } of byMag.values()) {
      items.sort((a, b) => a.distance - b.distance)
      for (let start = 0; start < items.length; start += 1024) {
        const batch = items.slice(start, start + 1024).map((item) => item.brick)
        const requestId = this.nextRequest++
        const keys = new Set(batch.map((b) => key(mag, b)))
        this.openRequests.set(requestId, { mag, keys })
        for (const k of keys) this.pending.set(k, requestId)
        this.outstanding += batch.length
        this.send(packRequest(requestId, mag.factor, batch, this.encoding, this.mapping))
      }
    }
  }

  private receive(frame: Decoded): void {
    if (frame.kind === 'bricks') {
      for (const record of frame.records) this.store(record)
      this.onBrick()
    } else if (frame.kind === 'pushed') {
      // Newer voxels of bricks this socket was sent: they replace the cached
      // ones (an answer still due for one comes after, and is as new). A
      // stale mark says only that the brick changed: the cached voxels stay
      // shown until those asked for again arrive.
      const mag = this.magsSeen.get(frame.mag.join(',')) ?? parseMag(magName(frame.mag))
      const keys: string[] = []
      const replaced: string[] = []
      for (const record of frame.records) {
        const k = key(mag, record.brick)
        keys.push(k)
        if (record.status === STATUS_STALE) {
          this.stale.set(k, { version: Math.max(frame.version, this.stale.get(k)?.version ?? 0), after: this.nextRequest })
          continue
        }
        this.stale.delete(k)
        this.keep(k, typedVoxels(record.dtype, record.voxels))
        this.replaced.set(k, (this.replaced.get(k) ?? 0) + 1)
        replaced.push(k)
      }
      this.version += 1
      this.preview?.pushed(frame.version, replaced)
      this.onPushed(frame.version, keys)
      this.onBrick()
    } else if (frame.kind === 'mapped') {
      this.onMapped({ version: frame.version, reset: frame.reset, pairs: frame.pairs })
    } else if (frame.kind === 'done') {
      this.openRequests.delete(frame.requestId)
    } else if (frame.kind === 'bad') {
      this.errors += 1
    } else {
      // A refused request: its tiles stay empty (not asked again until the
      // cache lets them go); rendering goes on.
      this.errors += 1
      const open = this.openRequests.get(frame.requestId)
      if (open) {
        for (const k of open.keys) {
          this.pending.delete(k)
          this.cache.set(k, null)
          this.outstanding -= 1
        }
        this.openRequests.delete(frame.requestId)
        this.version += 1
        this.onBrick()
      }
    }
  }

  private store(record: DecodedBrick): void {
    const open = this.openRequests.get(record.requestId)
    const k = open && key(open.mag, record.brick)
    if (!open || !k || !open.keys.has(k)) return
    open.keys.delete(k)
    this.pending.delete(k)
    this.outstanding -= 1
    this.keep(k, typedVoxels(record.dtype, record.voxels))
    const marked = this.stale.get(k)
    if (marked !== undefined && record.requestId >= marked.after) {
      // Asked for after the mark came: as new as the version it named.
      this.stale.delete(k)
      this.replaced.set(k, (this.replaced.get(k) ?? 0) + 1)
      this.preview?.pushed(marked.version, [k])
    }
    this.version += 1
  }

  private keep(k: string, data: BrickData): void {
    this.cache.set(k, data)
    if (data) this.onVoxels(data)
  }

  close(): void {
    this.closed = true
    this.worker.postMessage({ close: true })
    this.worker.terminate()
  }
}
