// The brick socket's binary frames (docs/protocol.md, "Bricks"; PUSHED and
// MAPPED are the annotation volume socket's): pure pack and unpack,
// little-endian.
// tests/golden/brick_frames.json holds golden bytes of every kind, read by
// these tests and by the Python ones.

export const REQUEST = 0x01
export const CANCEL = 0x02
export const BRICKS = 0x81
export const ERROR = 0x82
export const DONE = 0x83
/** Bricks of an annotation's volume layer that a new version changed (the /volume socket). */
export const PUSHED = 0x84
/** Supervoxel → agglomerate pairs of the layer's editable mapping that changed (the /volume socket). */
export const MAPPED = 0x85
/** MAPPED flag: the page missed changes; it looks up again what it shows. */
export const MAPPED_RESET = 0x01

export const STATUS_OK = 0
export const STATUS_MISSING = 1
export const STATUS_FAILED = 2
/** PUSHED only: the brick changed as of the frame's version, its voxels not sent: ask again. */
export const STATUS_STALE = 3

export const ENCODING_RAW = 0
export const ENCODING_ZSTD = 1

/** A record's dtype (its voxels' type): 4 is uint64, read as BigUint64Array. */
export const DTYPE_UINT8 = 1
export const DTYPE_UINT16 = 2
export const DTYPE_UINT32 = 3
export const DTYPE_UINT64 = 4

export type Coord = [number, number, number]

export interface BrickRecord {
  requestId: number
  brick: Coord
  status: number
  dtype: number
  encoding: number
  shape: Coord
  payload: Uint8Array
}

export interface Done {
  requestId: number
  sent: number
  missing: number
  cancelled: number
  failed: number
}

export interface WireError {
  code: number
  requestId: number
  message: string
}

/** What a materialised version changed: its bricks at one mag (records as in BRICKS, request id 0). */
export interface Pushed {
  version: number
  mag: Coord
  records: BrickRecord[]
}

/** What a merge, split or undo changed in the layer's editable mapping. */
export interface Mapped {
  version: number
  /** The page missed changes (no pairs): it looks up again what it shows. */
  reset: boolean
  /** ``count`` pairs, (supervoxel, agglomerate) after each other, in a buffer of their own. */
  pairs: BigUint64Array
}

export type ServerFrame =
  | { kind: 'bricks'; records: BrickRecord[] }
  | { kind: 'pushed'; pushed: Pushed }
  | { kind: 'mapped'; mapped: Mapped }
  | { kind: 'done'; done: Done }
  | { kind: 'error'; error: WireError }

export class FrameError extends Error {}

export function packRequest(
  requestId: number,
  mag: Coord,
  bricks: Coord[],
  encoding = ENCODING_RAW,
  mapping: string | null = null,
): Uint8Array {
  const name = mapping ? new TextEncoder().encode(mapping) : new Uint8Array(0)
  if (name.length > 255) throw new FrameError('mapping name too long')
  const out = new Uint8Array(16 + name.length + 12 * bricks.length)
  const view = new DataView(out.buffer)
  view.setUint8(0, REQUEST)
  view.setUint8(1, encoding)
  view.setUint16(2, bricks.length, true)
  view.setUint32(4, requestId, true)
  view.setUint16(8, mag[0], true)
  view.setUint16(10, mag[1], true)
  view.setUint16(12, mag[2], true)
  view.setUint8(14, name.length)
  out.set(name, 16)
  writeCoords(view, 16 + name.length, bricks)
  return out
}

function writeCoords(view: DataView, at: number, bricks: Coord[]): void {
  for (const [x, y, z] of bricks) {
    view.setInt32(at, x, true)
    view.setInt32(at + 4, y, true)
    view.setInt32(at + 8, z, true)
    at += 12
  }
}

export function packCancel(requestId: number, bricks: Coord[] = []): Uint8Array {
  const out = new Uint8Array(8 + 12 * bricks.length)
  const view = new DataView(out.buffer)
  view.setUint8(0, CANCEL)
  view.setUint16(2, bricks.length, true)
  view.setUint32(4, requestId, true)
  writeCoords(view, 8, bricks)
  return out
}

/** One frame from the server; payloads are views into ``data`` (no copy). */
export function unpack(data: Uint8Array): ServerFrame {
  if (data.length < 1) throw new FrameError('empty frame')
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength)
  const kind = data[0]
  if (kind === BRICKS) {
    if (data.length < 4) throw new FrameError('truncated bricks frame')
    return { kind: 'bricks', records: unpackRecords(data, view, 4, view.getUint16(2, true)) }
  }
  if (kind === PUSHED) {
    // u8 0x84, u8 reserved, u16 record count, u32 version, 3 × u16 mag, u16 reserved.
    if (data.length < 16) throw new FrameError('truncated pushed frame')
    const mag: Coord = [view.getUint16(8, true), view.getUint16(10, true), view.getUint16(12, true)]
    const records = unpackRecords(data, view, 16, view.getUint16(2, true))
    return { kind: 'pushed', pushed: { version: view.getUint32(4, true), mag, records } }
  }
  if (kind === MAPPED) {
    // u8 0x85, u8 flags, u16 reserved, u32 version, u32 pair count, then count × (u64, u64).
    if (data.length < 12) throw new FrameError('truncated mapped frame')
    const count = view.getUint32(8, true)
    if (data.length !== 12 + 16 * count) throw new FrameError('a mapped frame has 12 + 16 × count bytes')
    // Copied: the pairs start at byte 12, not where a BigUint64Array may view them.
    const pairs = new BigUint64Array(data.slice(12).buffer)
    return { kind: 'mapped', mapped: { version: view.getUint32(4, true), reset: (data[1] & MAPPED_RESET) !== 0, pairs } }
  }
  if (kind === DONE) {
    if (data.length !== 24) throw new FrameError('a done frame has 24 bytes')
    return {
      kind: 'done',
      done: {
        requestId: view.getUint32(4, true),
        sent: view.getUint32(8, true),
        missing: view.getUint32(12, true),
        cancelled: view.getUint32(16, true),
        failed: view.getUint32(20, true),
      },
    }
  }
  if (kind === ERROR) {
    if (data.length < 8) throw new FrameError('truncated error frame')
    return {
      kind: 'error',
      error: {
        code: view.getUint16(2, true),
        requestId: view.getUint32(4, true),
        message: new TextDecoder().decode(data.subarray(8)),
      },
    }
  }
  throw new FrameError(`unknown frame type 0x${kind.toString(16)}`)
}

/** ``count`` records of 32-byte headers and payloads from ``at`` to the frame's end. */
function unpackRecords(data: Uint8Array, view: DataView, at: number, count: number): BrickRecord[] {
  const records: BrickRecord[] = []
  for (let k = 0; k < count; k++) {
    if (at + 32 > data.length) throw new FrameError('truncated record header')
    const length = view.getUint32(at + 28, true)
    if (at + 32 + length > data.length) throw new FrameError('truncated payload')
    records.push({
      requestId: view.getUint32(at, true),
      brick: [view.getInt32(at + 4, true), view.getInt32(at + 8, true), view.getInt32(at + 12, true)],
      status: view.getUint8(at + 16),
      dtype: view.getUint8(at + 17),
      encoding: view.getUint8(at + 18),
      shape: [view.getUint16(at + 20, true), view.getUint16(at + 22, true), view.getUint16(at + 24, true)],
      payload: data.subarray(at + 32, at + 32 + length),
    })
    at += 32 + length
  }
  if (at !== data.length) throw new FrameError('trailing bytes after the records')
  return records
}
