// The server restarts under a writing page (issue "The browser client",
// bad input): the page says it is offline, keeps what is made meanwhile,
// reconnects by itself (backoff with jitter) and ends saved. Driven by the
// test over stdin/stdout, one line each way per step.
//   node e2e/restart.mjs <base-url> <annotation> <token>
import { createInterface } from 'node:readline'
import { launch, until } from './browser.mjs'

const [base, annotation, token] = process.argv.slice(2)
const lines = createInterface({ input: process.stdin })[Symbol.asyncIterator]()
const say = (obj) => console.log(JSON.stringify(obj))
const browser = await launch()
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 800 } })
  page.on('pageerror', (error) => console.error('page error:', error.message))
  await page.goto(`${base}/annotations/${annotation}?token=${token}&pos=100,100,10`)
  const status = page.locator('[data-testid="status"]')
  const text = () => status.textContent()
  await until(async () => (await text()).startsWith('saved'), 'synced')
  const box = await page.locator('[data-testid="xy"]').boundingBox()
  await page.mouse.click(box.x + 100, box.y + 100)
  await until(async () => (await text()).startsWith('saved up to version 1'), 'first node saved')
  say({ step: 'ready' })
  await lines.next() // the server is down
  await until(async () => (await text()).startsWith('offline'), 'offline shown', 20000)
  await page.mouse.click(box.x + 160, box.y + 100)
  await page.mouse.click(box.x + 220, box.y + 100)
  const offline = await text()
  say({ step: 'added', offline })
  await lines.next() // the server is back
  const back = Date.now()
  const saved = await until(async () => {
    const t = await text()
    return t.startsWith('saved up to version') ? t : null
  }, 'saved after the restart', 30000)
  say({ step: 'done', saved, reconnectMs: Date.now() - back })
} finally {
  await browser.close()
}
