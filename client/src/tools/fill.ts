// The 2D fill (WEBKNOSSOS's fill tool, in 2D): a click relabels the
// 4-connected region of the clicked voxel's id in that slice with the
// active segment (the server paints it, within a 1,024-voxel square). Pure.

import { type BoundingBox, type Fill2dOp, insideBox, type PlaneName, type Vec3 } from '../segmentation/ops'

/** The op for a click at mag-1 voxel ``seed``, or null outside the layer's box. */
export function fillOp(
  s: { layer: string; author: number | null; plane: PlaneName; mag: { name: string }; box: BoundingBox | null; segment: number },
  seed: Vec3,
  time: number,
): Fill2dOp | null {
  if (!insideBox(seed, s.box) || s.segment <= 0) return null
  return { kind: 'fill2d', layer: s.layer, author: s.author, time, mag: s.mag.name, plane: s.plane, seed: [...seed] as Vec3, segment: s.segment }
}
