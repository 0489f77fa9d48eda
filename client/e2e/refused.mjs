// A write the server refuses (the document is full, close 4413) shows a
// clear notice, and the page never counts the refused changes as saved.
//   node e2e/refused.mjs <base-url> <annotation> <token>
import { launch, openAnnotation, until } from './browser.mjs'

const [base, annotation, token] = process.argv.slice(2)
const browser = await launch()
const out = {}
try {
  const page = await openAnnotation(browser, base, annotation, token)
  const status = page.locator('[data-testid="status"]')
  const box = await page.locator('[data-testid="xy"]').boundingBox()
  for (let k = 0; k < 60; k++) {
    await page.mouse.click(box.x + 20 + 8 * (k % 60), box.y + 40 + 5 * (k % 50))
  }
  out.status = await until(async () => {
    const text = await status.textContent()
    return text.startsWith('refused') ? text : null
  }, 'the refusal shown', 20000)
  out.nodesOnPage = await page.evaluate(() => window.collab.skeleton.nodes.size)
  out.pending = await page.evaluate(() => window.collab.connection.state.pending)
} finally {
  await browser.close()
}
console.log(JSON.stringify(out))
