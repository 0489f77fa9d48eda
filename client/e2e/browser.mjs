// A headless Chromium for the end-to-end tests, with no download at test
// time: @sparticuz/chromium ships the binary in the npm package
// (../shared/field-notes.md), playwright-core drives it.
import chromium from '@sparticuz/chromium'
import { chromium as playwright } from 'playwright-core'

export async function launch() {
  const executablePath = await chromium.executablePath()
  return playwright.launch({ executablePath, args: chromium.args, headless: true })
}

/** Wait until `read()` returns a truthy value (polled every 20 ms, bounded). */
export async function until(read, what, timeoutMs = 10000) {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const value = await read()
    if (value) return value
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}

/** A page (in a context of its own) on an annotation, once it says "saved". */
export async function openAnnotation(browser, base, annotation, token, query = 'pos=100,100,10') {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } })
  const page = await context.newPage()
  page.on('pageerror', (error) => console.error('page error:', error.message))
  await page.goto(`${base}/annotations/${annotation}?token=${token}&${query}`)
  const status = page.locator('[data-testid="status"]')
  await until(async () => (await status.textContent()).startsWith('saved'), 'page synced')
  return page
}
