// Two pages paint one annotation's volume layer together (issue "Volume
// annotation together"): A adds the volume layer, takes a segment id (C)
// and draws a brush stroke in XY; the stroke shows on A at once (preview)
// and on B once the server has painted it (pushed bricks); B picks the
// segment with Shift+click and lists it in the Segments tab, where hiding
// it hides it on A too; Ctrl+Z on A
// removes the stroke on both; a read-only link gets no tools. Prints one
// JSON line of what it saw (pixels as RGB, read from screenshots).
//   node e2e/volume_tools.mjs <base-url> <annotation> <token A> <token B> <read link> <probes JSON>
// probes: {"stroke": [x, y], "outside": [x, y]} voxels of slice 20 (view
// centred on 40,30,20 at zoom 4); the stroke runs from 30,30 to 50,30.
import { launch, openAnnotation, until } from './browser.mjs'

const [base, annotation, tokenA, tokenB, readLink, probesJson] = process.argv.slice(2)
const probes = JSON.parse(probesJson)
const centre = [40, 30, 20]
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
const loaded = (page) =>
  until(() => testid(page, 'bricks').getAttribute('data-complete').then((v) => v === 'true'), 'bricks in view', 15000)
/** The screen point of voxel (x, y) of the XY plane. */
async function screen(page, [x, y]) {
  const box = await testid(page, 'xy').boundingBox()
  return [box.x + 256 + (x - centre[0]) * zoom + zoom / 2, box.y + 192 + (y - centre[1]) * zoom + zoom / 2]
}
const opsOn = (page) => page.evaluate(() => window.collab.segmentation.ops.size)

try {
  const a = await openAnnotation(browser, base, annotation, tokenA, query)
  const b = await openAnnotation(browser, base, annotation, tokenB, query)
  // No volume layer yet: A adds one over the dataset's segmentation; B sees it come.
  await until(() => testid(a, 'add-volume-layer').isVisible(), '"Add volume layer" offered')
  await testid(a, 'add-volume-layer').click()
  for (const page of [a, b]) await until(() => testid(page, 'volume-layer-row').isVisible(), 'the volume layer on both pages')
  out.layer = await testid(b, 'volume-layer').textContent()
  out.addOfferedAfter = await testid(a, 'add-volume-layer-row').isVisible()
  await until(async () => (await testid(a, 'seg-status').getAttribute('data-pending')) === '0', 'the layer saved')
  for (const page of [a, b]) await loaded(page)
  const before = { a: await pixels(a, [probes.stroke, probes.outside]), b: await pixels(b, [probes.stroke, probes.outside]) }
  out.before = before

  // A: the brush (Ctrl+K, B), a new segment id (C), a brush of radius 3.
  await testid(a, 'xy').focus()
  await a.keyboard.press('Control+k')
  await a.keyboard.press('b')
  out.toolA = await until(
    () => testid(a, 'volume-tools').getAttribute('data-tool').then((t) => (t === 'skeleton' ? null : t)),
    'the brush chosen',
  ).catch(() => testid(a, 'volume-tools').getAttribute('data-tool'))
  await a.keyboard.press('c')
  out.segment = Number(
    await until(() => testid(a, 'active-segment').getAttribute('data-segment'), 'a segment id from the server'),
  )
  await a.evaluate(() => {
    const size = document.querySelector('[data-testid="brush-size"]')
    size.value = '3'
    size.dispatchEvent(new Event('input'))
  })
  // Shift+wheel grows the brush; Shift+O shrinks it back.
  const [sx, sy] = await screen(a, [40, 60])
  await a.mouse.move(sx, sy)
  await a.keyboard.down('Shift')
  await a.mouse.wheel(0, -100)
  await a.keyboard.up('Shift')
  out.radiusAfterWheel = await until(() => a.evaluate(() => (window.collab.tools.radius !== 3 ? window.collab.tools.radius : null)), 'brush size')
  await a.keyboard.press('Shift+O')
  out.radiusAfterShiftO = await a.evaluate(() => window.collab.tools.radius)

  // The stroke: pressed at 30,30, dragged to 50,30 in ten steps.
  const [x0, y0] = await screen(a, [30, 30])
  const [x1] = await screen(a, [50, 30])
  await a.mouse.move(x0, y0)
  await a.mouse.down()
  await a.mouse.move(x1, y0, { steps: 10 })
  // Still pressed: nothing is written yet; A shows the stroke (its preview), B does not.
  out.opsWhileDrawing = await opsOn(a)
  out.previewOnA = await until(async () => {
    const [px] = await pixels(a, [probes.stroke])
    return same(px, before.a[0]) ? null : px
  }, 'the preview on A', 5000).catch(async () => (await pixels(a, [probes.stroke]))[0])
  out.bWhileDrawing = (await pixels(b, [probes.stroke]))[0]
  await a.mouse.up()
  const released = Date.now()
  out.opsOnA = await opsOn(a)
  await until(async () => (await opsOn(b)) === 1, 'the op on B')
  out.op = await b.evaluate(() => [...window.collab.segmentation.ops.values()][0])
  // B shows the stroke once the server has painted it and pushed the bricks.
  out.strokeOnB = await until(async () => {
    const [px] = await pixels(b, [probes.stroke])
    return same(px, before.b[0]) ? null : px
  }, 'the stroke drawn on B', 15000)
  out.seenOnBAfterMs = Date.now() - released
  out.afterOnB = await pixels(b, [probes.stroke, probes.outside])
  out.afterOnA = await pixels(a, [probes.stroke, probes.outside])

  // B: Shift+click on the stroke picks its segment; the Segments tab lists it with its anchor.
  await testid(b, 'tool-brush').click()
  const [px, py] = await screen(b, probes.stroke)
  await b.keyboard.down('Shift')
  await b.mouse.click(px, py)
  await b.keyboard.up('Shift')
  out.pickedOnB = Number(await until(() => testid(b, 'active-segment').getAttribute('data-segment'), 'picked'))
  out.opsAfterPick = await opsOn(b)
  await testid(b, 'tab-segments').click()
  out.listedOnB = await until(
    () => b.locator('[data-testid="segments"] li[data-segment] .segment-name').allTextContents().then((t) => (t.length ? t : null)),
    'the segment listed on B',
  )

  // Hidden in B's list: not drawn (the EM shows), on A too; shown again.
  const visible = b.locator(`[data-testid="segments"] li[data-segment="${out.segment}"] .segment-visible`)
  await visible.uncheck()
  out.hiddenOnA = await until(async () => {
    const [px] = await pixels(a, [probes.stroke])
    return px[0] === px[1] && px[1] === px[2] ? px : null
  }, 'the hidden segment not drawn on A', 10000)
  await visible.check()
  await until(async () => same((await pixels(a, [probes.stroke]))[0], out.afterOnA[0]), 'the segment shown again on A', 10000)

  // A undoes its stroke: it goes on both pages (B's pick wrote nothing to undo).
  await testid(a, 'xy').focus()
  await a.keyboard.press('Control+z')
  out.opsAfterUndo = { a: await opsOn(a), b: await until(async () => ((await opsOn(b)) === 0 ? 0 : null), 'undo reaching B').catch(() => opsOn(b)) }
  for (const [name, page] of [['a', a], ['b', b]]) {
    await until(async () => same((await pixels(page, [probes.stroke]))[0], before[name][0]), `the stroke gone on ${name.toUpperCase()}`, 15000)
  }
  out.afterUndo = { a: await pixels(a, [probes.stroke, probes.outside]), b: await pixels(b, [probes.stroke, probes.outside]) }
  await until(async () => (await testid(a, 'seg-status').getAttribute('data-pending')) === '0', 'the undo saved')
  out.savedSegmentationA = Number(await testid(a, 'seg-status').getAttribute('data-saved'))

  // A read-only link: the layer is shown, no tools and no "Add volume layer".
  const r = await openAnnotation(browser, base, annotation, readLink, query)
  await until(() => testid(r, 'volume-layer-row').isVisible(), 'the layer on the read-only page')
  out.readOnly = {
    tools: await testid(r, 'volume-tools').isVisible(),
    add: await testid(r, 'add-volume-layer-row').isVisible(),
  }
} finally {
  await browser.close()
}
console.log(JSON.stringify(out))
