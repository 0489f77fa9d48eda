// The history in the page (issue "The browser client", History): after
// three nodes, the replay slider shows version 1 with one node; restoring
// version 1 makes it the newest state, for the page and the server.
//   node e2e/history.mjs <base-url> <annotation> <token>
import { launch, openAnnotation, until } from './browser.mjs'

const [base, annotation, token] = process.argv.slice(2)
const browser = await launch()
const out = {}
try {
  const page = await openAnnotation(browser, base, annotation, token)
  const status = () => page.locator('[data-testid="status"]')
  const count = () => page.locator('[data-testid="node-count"]').textContent().then(Number)
  const box = await page.locator('[data-testid="xy"]').boundingBox()
  for (let k = 0; k < 3; k++) await page.mouse.click(box.x + 300 + 40 * k, box.y + 300)
  await until(async () => Number(await status().getAttribute('data-saved')) >= 3 && (await status().textContent()).startsWith('saved'), 'three saved')
  await page.click('[data-testid="history-open"]')
  await until(() => page.locator('[data-testid="history"]').isVisible(), 'history panel')
  out.head = Number(await page.locator('[data-testid="history-slider"]').getAttribute('max'))
  // Move the slider as a hand would, then let the page draw one frame.
  const scrub = async (n) => {
    await page.locator('[data-testid="history-slider"]').evaluate((el, v) => {
      el.value = String(v)
      el.dispatchEvent(new Event('input'))
    }, n)
    await page.evaluate(() => new Promise((resolve) => requestAnimationFrame(() => requestAnimationFrame(resolve))))
  }
  out.byVersion = []
  for (const n of [0, 1, 2, 3]) {
    await scrub(n)
    out.byVersion.push(await count())
  }
  await scrub(1)
  out.label = await page.locator('[data-testid="history-label"]').textContent()
  await page.click('[data-testid="history-restore"]')
  await until(async () => Number(await page.locator('[data-testid="history-slider"]').getAttribute('max')) === 4, 'restore recorded')
  await page.click('[data-testid="history-close"]')
  out.afterRestore = await until(async () => ((await count()) === 1 ? 1 : null), 'live document restored')
} finally {
  await browser.close()
}
console.log(JSON.stringify(out))
