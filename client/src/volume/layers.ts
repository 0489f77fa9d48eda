// A dataset's layers (GET /api/datasets/{name}) and the bricks of the one
// the viewer shows as EM greyscale.

import type { Api } from '../api'
import { BrickSource, type Mag, parseMag } from './bricks'

export interface LayerInfo {
  name: string
  category: 'color' | 'segmentation'
  dtype: string
  boundingBox: { topLeft: number[]; size: number[] }
  mags: string[]
  mappings?: string[]
}

export interface ColorLayer {
  info: LayerInfo
  mags: Mag[]
  source: BrickSource
}

export async function openColorLayer(api: Api, dataset: string): Promise<ColorLayer | null> {
  const meta = await api.call<{ layers: LayerInfo[] }>('GET', `/api/datasets/${encodeURIComponent(dataset)}`)
  const info = meta.layers.find((l) => l.category === 'color')
  if (!info) return null
  return { info, mags: info.mags.map(parseMag), source: new BrickSource(dataset, info.name, api.token) }
}
