// Viewer timings (issue "The browser client", Performance), printed as one
// JSON line: first view with EM data (navigation → every brick in view of
// all three planes drawn), N fresh browser contexts; then panning with an
// arrow key held: frame intervals while moving, and the time from the stop
// until every brick in view is drawn.
//   node e2e/bench_view.mjs <annotation-url> [runs]
import { launch, until } from './browser.mjs'

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
      // Panning: hold → for 3 s while the page records its frame intervals.
      await page.locator('[data-testid="xy"]').focus()
      await page.evaluate(() => {
        window.__frames = []
        let last = performance.now()
        const tick = (now) => {
          window.__frames.push(now - last)
          last = now
          if (window.__frames.length < 100000) requestAnimationFrame(tick)
        }
        requestAnimationFrame(tick)
      })
      const stopAt = Date.now() + 3000
      while (Date.now() < stopAt) await page.keyboard.press('ArrowRight')
      const stopped = Date.now()
      const frames = await page.evaluate(() => window.__frames.slice(1))
      await until(() => complete(page), 'bricks after panning', 30000)
      const sorted = [...frames].sort((a, b) => a - b)
      const pct = (p) => sorted[Math.min(sorted.length - 1, Math.round((p / 100) * (sorted.length - 1)))]
      out.pan = {
        frames: frames.length,
        p50: pct(50),
        p95: pct(95),
        max: sorted[sorted.length - 1],
        loadedAfterStopMs: Date.now() - stopped,
      }
    }
  }
} finally {
  await browser.close()
}
console.log(JSON.stringify(out))
