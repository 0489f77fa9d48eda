// The segmentation document's updates as the stock yjs client writes them
// (docs/schema.md, "segmentation"): each step's update, hex, from a document
// with a fixed client id. `node segmentation_golden.mjs` prints the JSON;
// `--check` compares it with tests/golden/segmentation_updates.json (exit 0 = equal).
import * as Y from 'yjs'
import { readFileSync } from 'node:fs'

const doc = new Y.Doc()
doc.clientID = 7
const steps = []
const step = (name, change) => {
  const before = Y.encodeStateVector(doc)
  doc.transact(change)
  steps.push({ name, update: Buffer.from(Y.encodeStateAsUpdate(doc, before)).toString('hex') })
}
const layers = doc.getMap('layers')
const segments = doc.getMap('segments')
const groups = doc.getMap('groups')
const ops = doc.getMap('ops')

step('add_layer', () => {
  const layer = new Y.Map()
  layers.set('7-1', layer)
  layer.set('name', 'Volume')
  layer.set('dtype', 'uint32')
  layer.set('fallback', 'segmentation')
  layer.set('mags', ['1', '2-2-1', '4-4-2'])
  layer.set('boundingBox', { topLeft: [0, 0, 0], size: [1024, 1024, 256] })
  layer.set('activeMapping', null)
})
step('add_group', () => {
  const group = new Y.Map()
  groups.set('7-2', group)
  group.set('layer', '7-1')
  group.set('name', 'axons')
  group.set('parentId', null)
  group.set('isExpanded', true)
})
step('add_segment', () => {
  segments.set('7-1/1001', {
    name: 'axon 1', color: [1, 0.5, 0, 1], anchor: [100, 200, 30], groupId: '7-2',
    metadata: { note: 'first' }, isVisible: true, time: 1733140800000
  })
})
step('brush', () => {
  ops.set('7-3', {
    kind: 'brush', layer: '7-1', author: 1, time: 1733140801000, mag: '1', plane: 'xy',
    points: [[100, 200, 30], [110, 204, 30], [120, 210, 30]], radius: 10, segment: 1001,
    erase: false, mode: 'all'
  })
})
step('fill2d', () => {
  ops.set('7-4', {
    kind: 'fill2d', layer: '7-1', author: 1, time: 1733140802000, mag: '1', plane: 'xy',
    seed: [110, 205, 30], segment: 1001
  })
})
step('undo_fill', () => { ops.delete('7-4') })
step('rename_segment', () => {
  segments.set('7-1/1001', { ...segments.get('7-1/1001'), name: 'axon 1 (checked)' })
})

const out = { clientID: 7, steps, state: doc.getMap('ops').toJSON() }
if (process.argv.includes('--check')) {
  const golden = JSON.parse(readFileSync(new URL('../golden/segmentation_updates.json', import.meta.url)))
  let ok = true
  for (const [i, s] of steps.entries()) {
    if (golden.steps[i]?.update !== s.update) { ok = false; console.log(`MISMATCH ${s.name}`) }
  }
  console.log(ok ? 'golden updates match' : 'golden updates differ')
  process.exit(ok ? 0 : 1)
}
console.log(JSON.stringify(out, null, 2))
