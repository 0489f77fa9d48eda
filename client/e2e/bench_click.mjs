// A click on a large skeleton (issue "The browser client", Performance):
// from the mouse click to the frame that shows the new node, 20 times,
// frame intervals while panning over it, and the page's JS heap. Prints one JSON line.
//   node e2e/bench_click.mjs <annotation-url> <clicks>
import { launch } from './browser.mjs'
import { pan } from './pan.mjs'

const [url, clicksArg] = process.argv.slice(2)
const clicks = Number(clicksArg ?? 20)
const browser = await launch()
const out = {}
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 800 } })
  const started = Date.now()
  await page.goto(url)
  // A page busy applying a million nodes answers no locator: wait in the page.
  await page.waitForFunction(
    () => document.querySelector('[data-testid="status"]')?.textContent?.startsWith('saved'),
    null,
    { timeout: 900000, polling: 500 },
  )
  out.openMs = Date.now() - started
  out.nodes = Number(await page.locator('[data-testid="node-count"]').textContent())
  const box = await page.locator('[data-testid="xy"]').boundingBox()
  out.clickMs = []
  for (let k = 0; k < clicks; k++) {
    // Timed inside the page: the click event to the next frame after the
    // node count shows the new node.
    const ms = await page.evaluate(
      ([x, y]) =>
        new Promise((resolve) => {
          const canvas = document.querySelector('[data-testid="xy"]')
          const count = document.querySelector('[data-testid="node-count"]')
          const before = Number(count.textContent)
          const t0 = performance.now()
          canvas.dispatchEvent(new MouseEvent('mousedown', { clientX: x, clientY: y, button: 0, bubbles: true }))
          const wait = () => {
            if (Number(count.textContent) > before) requestAnimationFrame(() => resolve(performance.now() - t0))
            else requestAnimationFrame(wait)
          }
          requestAnimationFrame(wait)
        }),
      [box.x + 40 + 22 * (k % 20), box.y + 40 + 15 * Math.floor(k / 20)],
    )
    out.clickMs.push(Math.round(ms * 10) / 10)
  }
  // Panning over it: → held at a keyboard's repeat rate for 3 s.
  out.pan = await pan(page, 3000, 33)
  out.heapMB = await page.evaluate(() => Math.round((performance.memory?.usedJSHeapSize ?? 0) / 2 ** 20))
} finally {
  await browser.close()
}
console.log(JSON.stringify(out))
