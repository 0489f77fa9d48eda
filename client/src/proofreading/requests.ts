// The proofreading requests of docs/api.md, "Proofreading", over the REST
// API: look up agglomerates, merge, split, read the connectome. Ids may be
// uint64: sent as JSON digits (JSON.stringify has no bigint) and read back
// exactly (a JSON number of 16 digits or more is read as a bigint when
// past 2^53: see `parseWithIds`). Refusals are ApiErrors carrying the
// server's message. The parsing is pure: client/test/agglomerates.test.ts.

import { ApiError } from '../api'
import { type SegmentId, segmentId } from '../segmentation/segment_id'

export type Vec3 = [number, number, number]

export interface MergeAnswer {
  op: string
  version: number
  /** The active side's agglomerate, which kept its id. */
  agglomerate: SegmentId
  /** The agglomerate that joined it. */
  merged: SegmentId
}

export interface SplitAnswer {
  op: string
  version: number
  agglomerate: SegmentId
  cut: [SegmentId, SegmentId][]
  /** The first source's agglomerate now, and the first sink's. */
  agglomerates: SegmentId[]
}

export interface Partner {
  agglomerate: SegmentId
  out: number
  in: number
  total: number
}

export interface Synapse {
  id: SegmentId
  position: Vec3
  /** out: the agglomerate is pre-synaptic. */
  direction: 'out' | 'in'
  segment: SegmentId
  partnerSegment: SegmentId
  partner: SegmentId
  type: string
}

export interface Connectome {
  agglomerate: SegmentId
  supervoxels: number
  total: number
  partners: Partner[]
  synapses: Synapse[]
  version: number
}

/** Digits past 2^53 − 1 become decimal strings before JSON.parse reads them. */
const LONG_NUMBER = /([:,[]\s*)(\d{16,})(?=\s*[,\]}])/g

/** JSON whose long integers stay exact: as decimal strings (`asId` reads them). */
export function parseWithIds(text: string): unknown {
  return JSON.parse(text.replace(LONG_NUMBER, (whole, before: string, digits: string) =>
    BigInt(digits) > BigInt(Number.MAX_SAFE_INTEGER) ? `${before}"${digits}"` : whole,
  ))
}

/** An id as `parseWithIds` left it (a number, or the digits of a bigint). */
export function asId(value: unknown): SegmentId {
  if (typeof value === 'string' && /^\d+$/.test(value)) return segmentId(BigInt(value))
  return typeof value === 'number' ? value : 0
}

/** JSON with ids in it, exact (a bigint's digits written as a JSON number). */
export function stringifyWithIds(value: unknown): string {
  return JSON.stringify(value, (_key, v) => (typeof v === 'bigint' ? `#big#${v}` : v)).replace(
    /"#big#(\d+)"/g,
    '$1',
  )
}

export function parseConnectome(body: unknown): Connectome {
  const b = body as Record<string, unknown>
  const list = (v: unknown): Record<string, unknown>[] => (Array.isArray(v) ? v : [])
  return {
    agglomerate: asId(b.agglomerate),
    supervoxels: Number(b.supervoxels ?? 0),
    total: Number(b.total ?? 0),
    version: Number(b.version ?? 0),
    partners: list(b.partners).map((p) => ({
      agglomerate: asId(p.agglomerate),
      out: Number(p.out ?? 0),
      in: Number(p.in ?? 0),
      total: Number(p.total ?? 0),
    })),
    synapses: list(b.synapses).map((s) => ({
      id: asId(s.id),
      position: (Array.isArray(s.position) ? s.position.map(Number) : [0, 0, 0]) as Vec3,
      direction: s.direction === 'out' ? 'out' : 'in',
      segment: asId(s.segment),
      partnerSegment: asId(s.partnerSegment),
      partner: asId(s.partner),
      type: String(s.type ?? ''),
    })),
  }
}

/** The requests of one annotation layer. */
export class ProofreadingApi {
  private readonly base: string

  constructor(
    private readonly token: string,
    annotation: number,
    readonly layer: string,
  ) {
    this.base = `/api/annotations/${annotation}/volume/${encodeURIComponent(layer)}`
  }

  private async call(method: string, path: string, body?: unknown): Promise<unknown> {
    const response = await fetch(this.base + path, {
      method,
      headers: {
        authorization: `Bearer ${this.token}`,
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      },
      body: body === undefined ? undefined : stringifyWithIds(body),
    })
    const text = await response.text()
    let data: unknown = null
    try {
      data = text ? parseWithIds(text) : null
    } catch {
      data = null
    }
    if (!response.ok) {
      const error = (data as { error?: { code?: string; message?: string } } | null)?.error ?? {}
      throw new ApiError(response.status, error.code ?? 'error', error.message ?? response.statusText)
    }
    return data
  }

  /** Each supervoxel's agglomerate now (0: none). */
  async agglomerates(ids: SegmentId[]): Promise<{ agglomerates: SegmentId[]; version: number }> {
    const body = (await this.call('POST', '/agglomerates', { segments: ids })) as Record<string, unknown>
    const found = Array.isArray(body.agglomerates) ? body.agglomerates.map(asId) : []
    return { agglomerates: found, version: Number(body.version ?? 0) }
  }

  async merge(a: SegmentId, b: SegmentId, positions: Vec3[]): Promise<MergeAnswer> {
    const body = (await this.call('POST', '/merge', { a, b, positions })) as Record<string, unknown>
    return { op: String(body.op), version: Number(body.version), agglomerate: asId(body.agglomerate), merged: asId(body.merged) }
  }

  async split(sources: SegmentId[], sinks: SegmentId[], positions: Vec3[]): Promise<SplitAnswer> {
    const body = (await this.call('POST', '/split', { sources, sinks, positions })) as Record<string, unknown>
    return {
      op: String(body.op),
      version: Number(body.version),
      agglomerate: asId(body.agglomerate),
      cut: (Array.isArray(body.cut) ? body.cut : []).map((e: unknown[]) => [asId(e[0]), asId(e[1])]),
      agglomerates: (Array.isArray(body.agglomerates) ? body.agglomerates : []).map(asId),
    }
  }

  /** The synapses of the agglomerate holding ``segment``, with their partners. */
  async connectome(segment: SegmentId): Promise<Connectome> {
    return parseConnectome(await this.call('GET', `/connectome?segment=${segment}`))
  }
}
