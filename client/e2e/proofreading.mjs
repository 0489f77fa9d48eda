// Two pages proofread one annotation together (the proofreading tool):
// A adds the volume layer over the dataset's segmentation and colours it by
// the agglomerate mapping "graph" (the layer's line); both pages colour
// each supervoxel by its agglomerate. A picks supervoxel 1 (click),
// Shift+clicks supervoxel 9: B's pixels of 9 turn to agglomerate 1's
// colour (a MAPPED push). A Ctrl+clicks supervoxel 4: the split parts 4
// off (B sees it), A's Connectome tab lists the active agglomerate's
// partner; a merge within one agglomerate shows the server's refusal;
// Ctrl+Z on A undoes the split on both pages and the connectome follows; a
// click on a synapse centres A's view there. Prints one JSON line of what it
// saw (pixels as RGB, read from screenshots).
//   node e2e/proofreading.mjs <base-url> <annotation> <token A> <token B> <probes JSON> <colours JSON>
// probes: {"sv1": [x, y], ...} voxels of slice 17 (view centred on
// 50,40,17 at zoom 4); colours: {"agg1": [r, g, b], ...} the agglomerates'.
import { launch, openAnnotation, until } from './browser.mjs'

const [base, annotation, tokenA, tokenB, probesJson, coloursJson] = process.argv.slice(2)
const probes = JSON.parse(probesJson)
const colours = JSON.parse(coloursJson)
const centre = [50, 40, 17]
const zoom = 4
const query = `pos=${centre.join(',')}&zoom=${zoom}&seg=1&alpha=1`
const browser = await launch()
const out = {}

/** The RGB of the XY plane at voxels ``points`` (the centre of each voxel's pixels). */
async function pixels(page, points) {
  const shot = await page.locator('[data-testid="xy"]').screenshot()
  return page.evaluate(
    async ({ png, points, centre, zoom }) => {
      const image = new Image()
      image.src = `data:image/png;base64,${png}`
      await image.decode()
      const canvas = document.createElement('canvas')
      canvas.width = image.width
      canvas.height = image.height
      const ctx = canvas.getContext('2d')
      ctx.drawImage(image, 0, 0)
      return points.map(([x, y]) => {
        const px = Math.floor(canvas.width / 2 + (x - centre[0]) * zoom + zoom / 2)
        const py = Math.floor(canvas.height / 2 + (y - centre[1]) * zoom + zoom / 2)
        return [...ctx.getImageData(px, py, 1, 1).data.slice(0, 3)]
      })
    },
    { png: shot.toString('base64'), points, centre, zoom },
  )
}

const same = (a, b) => JSON.stringify(a) === JSON.stringify(b)
const testid = (page, name) => page.locator(`[data-testid="${name}"]`)
/** The probes' pixels once they all equal ``want`` (null: any, once the view is loaded). */
async function pixelsWhen(page, names, want, what) {
  return until(async () => {
    const seen = await pixels(page, names.map((n) => probes[n]))
    return want.every((w, i) => same(seen[i], w)) ? seen : null
  }, what, 20000).catch(async (error) => {
    throw new Error(`${error.message}: saw ${JSON.stringify(await pixels(page, names.map((n) => probes[n])))}, wanted ${JSON.stringify(want)}`)
  })
}
/** The screen point of voxel (x, y) of the XY plane. */
async function screen(page, [x, y]) {
  const box = await testid(page, 'xy').boundingBox()
  return [box.x + 256 + (x - centre[0]) * zoom + zoom / 2, box.y + 192 + (y - centre[1]) * zoom + zoom / 2]
}
/** A click in the probe's supervoxel, away from where pixels are read (others draw my
 *  cursor there); the serial of the toast shown before it. */
async function click(page, name, modifier = null) {
  const before = Number((await testid(page, 'toast').getAttribute('data-serial')) ?? 0)
  const [px, py] = probes[name]
  const [x, y] = await screen(page, [px - 6, py - 5])
  if (modifier) await page.keyboard.down(modifier)
  await page.mouse.click(x, y)
  if (modifier) await page.keyboard.up(modifier)
  return before
}
const active = (page) => testid(page, 'proofread-active-text')
/** The text of the next answer's toast (after the one with serial ``after``; a pending "…" is skipped). */
async function toast(page, kind, what, after) {
  const t = testid(page, 'toast')
  return until(async () => {
    const [serial, seenKind, text] = await t.evaluate((e) => [Number(e.dataset.serial ?? 0), e.dataset.kind, e.textContent])
    return serial > after && seenKind === kind && !text.endsWith('…') ? text : null
  }, what)
}
try {
  const a = await openAnnotation(browser, base, annotation, tokenA, query)
  const b = await openAnnotation(browser, base, annotation, tokenB, query)
  // A adds the volume layer, then colours it by the mapping with a graph (the layer's line).
  await until(() => testid(a, 'add-volume-layer').isVisible(), '"Add volume layer" offered')
  await testid(a, 'add-volume-layer').click()
  await until(() => testid(a, 'active-mapping-row').isVisible(), 'the mapping choice')
  out.mappingOptions = await testid(a, 'active-mapping').locator('option').evaluateAll((o) => o.map((e) => e.value))
  await testid(a, 'active-mapping').selectOption('graph')
  for (const page of [a, b]) {
    await until(async () => (await testid(page, 'active-mapping').inputValue()) === 'graph', 'the mapping on both pages')
  }
  // Both pages colour by agglomerate: 1 and 9 in agglomerates 1 and 2, 4 in 1.
  const start = [colours.agg1, colours.agg2, colours.agg1]
  out.before = {
    a: await pixelsWhen(a, ['sv1', 'sv9', 'sv4'], start, 'A coloured by agglomerate'),
    b: await pixelsWhen(b, ['sv1', 'sv9', 'sv4'], start, 'B coloured by agglomerate'),
  }

  // A: the proofreading tool (Ctrl+K, O); a click picks supervoxel 1.
  await testid(a, 'xy').focus()
  await a.keyboard.press('Control+k')
  await a.keyboard.press('o')
  out.toolA = await until(
    () => testid(a, 'volume-tools').getAttribute('data-tool').then((t) => (t === 'proofread' ? t : null)),
    'the proofreading tool chosen',
  ).catch(() => testid(a, 'volume-tools').getAttribute('data-tool'))
  await click(a, 'sv1')
  out.picked = await until(async () => {
    const [sv, agg] = [await active(a).getAttribute('data-supervoxel'), await active(a).getAttribute('data-agglomerate')]
    return sv && agg ? [Number(sv), Number(agg)] : null
  }, 'the active segment')

  // Shift+click on 9: its agglomerate joins 1's; B's pixels of 9 change colour.
  let before = await click(a, 'sv9', 'Shift')
  out.mergeToast = await toast(a, 'info', 'the merge answered', before)
  out.afterMerge = { b: await pixelsWhen(b, ['sv1', 'sv9', 'sv16'], [colours.agg1, colours.agg1, colours.agg1], 'the merge on B') }

  // Ctrl+click on 4: the active agglomerate is cut between 1 and 4.
  before = await click(a, 'sv4', 'Control')
  out.splitToast = await toast(a, 'info', 'the split answered', before)
  out.afterSplit = { b: await pixelsWhen(b, ['sv1', 'sv4', 'sv3', 'sv9'], [colours.agg1, colours.agg4, colours.agg4, colours.agg1], 'the split on B') }
  out.opsOnB = await until(
    () => b.evaluate(() => [...window.collab.segmentation.ops.entries()].map(([k, op]) => [k, op.kind, op.author])).then((o) => (o.length === 2 ? o : null)),
    'both ops on B',
  )

  // A merge within one agglomerate is refused: the server's message, nothing written.
  before = await click(a, 'sv16', 'Shift')
  out.refusal = await toast(a, 'error', 'the refusal shown', before)
  out.opsAfterRefusal = await a.evaluate(() => window.collab.segmentation.ops.size)

  // The connectome of the active agglomerate (1): its partner 3 (synapse 2, 3 → 1).
  await testid(a, 'tab-connectome').click()
  const partners = (page) =>
    page.locator('[data-testid="partners"] tbody tr').evaluateAll((rows) => rows.map((r) => [...r.cells].map((c) => c.textContent)))
  out.partners = await until(async () => {
    const rows = await partners(a)
    return rows.length ? rows : null
  }, 'the partners listed')
  out.synapses = await a.locator('[data-testid="synapses"] li').allTextContents()
  const shown = await testid(a, 'connectome').getAttribute('data-version')

  // Ctrl+Z on A: its split's op leaves the document; 4 is agglomerate 1's again on B.
  await testid(a, 'xy').focus()
  await a.keyboard.press('Control+z')
  out.undoneOnB = await pixelsWhen(b, ['sv1', 'sv4', 'sv9'], [colours.agg1, colours.agg1, colours.agg1], 'the undo on B')
  out.opsAfterUndo = await until(
    () => b.evaluate(() => [...window.collab.segmentation.ops.values()].map((op) => op.kind)).then((k) => (k.length === 1 ? k : null)),
    'the split op deleted on B',
  )
  // The connectome follows the mapping: synapse 1 (4 → 3) is agglomerate 1's again.
  out.partnersAfterUndo = await until(async () => {
    if ((await testid(a, 'connectome').getAttribute('data-version')) === shown) return null
    const rows = await partners(a)
    return rows.length ? rows : null
  }, 'the connectome asked again')

  // A click on a synapse centres the view on it.
  await a.locator('[data-testid="synapses"] li').first().click()
  out.centredOn = await until(async () => {
    const text = await testid(a, 'position').textContent()
    return text.startsWith(`${centre.join(', ')} `) ? null : text
  }, 'the view centred on the synapse')
} finally {
  await browser.close()
}
console.log(JSON.stringify(out))
