// A read-only share link: the page says so, and an edit never looks accepted.
//   node e2e/readonly.mjs <base-url> <annotation> <link token>
import { launch, openAnnotation } from './browser.mjs'

const [base, annotation, token] = process.argv.slice(2)
const browser = await launch()
const out = {}
try {
  const page = await openAnnotation(browser, base, annotation, token)
  out.badge = await page.locator('[data-testid="access"]').textContent()
  const box = await page.locator('[data-testid="xy"]').boundingBox()
  await page.mouse.click(box.x + 200, box.y + 200)
  await page.locator('[data-testid="xy"]').press('c')
  await page.evaluate(() => new Promise((resolve) => requestAnimationFrame(() => requestAnimationFrame(resolve))))
  out.nodes = Number(await page.locator('[data-testid="node-count"]').textContent())
  out.status = await page.locator('[data-testid="status"]').textContent()
  out.restoreOffered = await page.locator('[data-testid="history-restore"]').isVisible()
} finally {
  await browser.close()
}
console.log(JSON.stringify(out))
