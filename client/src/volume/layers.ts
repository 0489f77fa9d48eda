// A dataset's layers (GET /api/datasets/{name}) and the bricks of the one
// the viewer shows as EM greyscale; an annotation's volume layer.

import type { Api } from '../api'
import { type SegmentId, segmentId } from '../segmentation/segment_id'
import { BrickSource, type Mag, parseMag } from './bricks'
import { ENCODING_RAW, ENCODING_ZSTD } from './wire'

export interface LayerInfo {
  name: string
  category: 'color' | 'segmentation'
  dtype: string
  boundingBox: { topLeft: number[]; size: number[] }
  mags: string[]
  mappings?: string[]
  /** The mappings with an agglomerate graph (what proofreading can start from). */
  agglomerateGraphs?: string[]
}

export interface Layer {
  info: LayerInfo
  mags: Mag[]
  source: BrickSource
}

/** The first color layer (EM greyscale) and the first segmentation layer of a dataset. */
export async function openLayers(
  api: Api,
  dataset: string,
): Promise<{ color: Layer | null; segmentation: Layer | null }> {
  const meta = await api.call<{ layers: LayerInfo[] }>('GET', `/api/datasets/${encodeURIComponent(dataset)}`)
  const open = (category: LayerInfo['category']): Layer | null => {
    const info = meta.layers.find((l) => l.category === category)
    return info
      ? {
          info,
          mags: info.mags.map(parseMag),
          source: new BrickSource(
            `/data/${encodeURIComponent(dataset)}/${encodeURIComponent(info.name)}`,
            api.token,
            info.dtype === 'uint8' ? ENCODING_RAW : ENCODING_ZSTD,
          ),
        }
      : null
  }
  return { color: open('color'), segmentation: open('segmentation') }
}

/** An annotation's volume layer (an entry of the segmentation document's
 *  `layers`): its bricks over the /volume socket, live (docs/protocol.md). */
export function openVolumeLayer(api: Api, annotation: number, layerId: string, info: LayerInfo): Layer {
  return {
    info,
    mags: info.mags.map(parseMag),
    source: new BrickSource(
      `/volume/${annotation}/${encodeURIComponent(layerId)}`,
      api.token,
      ENCODING_ZSTD,
      256 * 1024 * 1024,
      true,
    ),
  }
}

/** The golden ratio's fraction in 64-bit fixed point (0x9E3779B97F4A7C15 / 2^64). */
const PHI_64 = 0x9e3779b97f4a7c15n
const MASK_64 = (1n << 64n) - 1n

/** A segment id's colour (an RGBA word), as WEBKNOSSOS hashes them: hues
 *  spread by the golden ratio. An id above 2^53 (a uint64 layer's) takes the
 *  fraction of id × φ exactly, in 64-bit fixed point: in floating point
 *  every such id would come out red. The same id, from a brick of any
 *  dtype or from the segment list, always has the same colour. */
const colours = new Map<SegmentId, number>()
export function segmentColour(value: number | bigint): number {
  const id = segmentId(value)
  let rgba = colours.get(id)
  if (rgba === undefined) {
    const hue = typeof id === 'number' ? (id * 0.618033988749895) % 1 : Number((id * PHI_64) & MASK_64) / 2 ** 64
    const [r, g, b] = hsv(hue, 0.8, 1)
    rgba = (0xff << 24) | (b << 16) | (g << 8) | r
    if (colours.size > 100_000) colours.clear()
    colours.set(id, rgba)
  }
  return rgba
}

function hsv(h: number, s: number, v: number): [number, number, number] {
  const i = Math.floor(h * 6)
  const f = h * 6 - i
  const p = v * (1 - s)
  const q = v * (1 - f * s)
  const t = v * (1 - (1 - f) * s)
  const [r, g, b] = [[v, t, p], [q, v, p], [p, v, t], [p, q, v], [t, p, v], [v, p, q]][i % 6]
  return [Math.round(r * 255), Math.round(g * 255), Math.round(b * 255)]
}
