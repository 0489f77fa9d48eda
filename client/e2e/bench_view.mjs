// Viewer timings (issue "The browser client", Performance), printed as one
// JSON line: first view with EM data (navigation → EM in every pixel of the
// three planes, some of it from the coarser level; and → every brick in view
// drawn at the mag the zoom asks for), N fresh browser contexts; then
// panning with an arrow key (held at a keyboard's repeat rate, and pressed
// as fast as the driver can): frame intervals while moving, and the time
// from the stop until every brick in view is drawn.
//   node e2e/bench_view.mjs <annotation-url> [runs]
import { launch, until } from './browser.mjs'
import { pan } from './pan.mjs'

const [url, runsArg] = process.argv.slice(2)
const runs = Number(runsArg ?? 5)
const browser = await launch()
const out = { firstView: [], firstFilled: [], pan: null }
const filled = (page) =>
  page.locator('[data-testid="bricks"]').getAttribute('data-filled').then((v) => v === 'true')
const complete = (page) =>
  page.locator('[data-testid="bricks"]').getAttribute('data-complete').then((v) => v === 'true')
try {
  for (let k = 0; k < runs; k++) {
    const context = await browser.newContext({ viewport: { width: 1280, height: 800 } })
    const page = await context.newPage()
    const started = Date.now()
    await page.goto(url)
    await until(() => filled(page), 'planes filled', 30000)
    out.firstFilled.push(Date.now() - started)
    await until(() => complete(page), 'first view', 30000)
    out.firstView.push(Date.now() - started)
    if (k < runs - 1) await page.close() // contexts stay: single-process Chromium ends with its last one
    else {
      // Panning: → held at a keyboard's repeat rate for 3 s, then pressed
      // as fast as the driver can for 3 s (./pan.mjs).
      const held = await pan(page, 3000, 33)
      const heldStopped = Date.now()
      await until(() => complete(page), 'bricks after panning', 30000)
      out.panHeld = { ...held, loadedAfterStopMs: Date.now() - heldStopped }
      const flood = await pan(page, 3000, 0)
      const stopped = Date.now()
      await until(() => complete(page), 'bricks after panning', 30000)
      out.pan = { ...flood, loadedAfterStopMs: Date.now() - stopped }
    }
  }
} finally {
  await browser.close()
}
console.log(JSON.stringify(out))
