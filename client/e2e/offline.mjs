// Nothing lost offline (issue "The browser client", "Never lose work"): a
// page goes offline, places three nodes (they show as pending), is closed,
// and reopened online: the server ends with its nodes and nothing pending.
//   node e2e/offline.mjs <base-url> <annotation> <token>
import { launch, until } from './browser.mjs'

const [base, annotation, token] = process.argv.slice(2)
const browser = await launch()
const out = {}
try {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } })
  const url = `${base}/annotations/${annotation}?token=${token}&pos=100,100,10`
  const status = (page) => page.locator('[data-testid="status"]').textContent()
  const open = async () => {
    const page = await context.newPage()
    page.on('pageerror', (error) => console.error('page error:', error.message))
    await page.goto(url)
    return page
  }
  let page = await open()
  await until(async () => (await status(page)).startsWith('saved'), 'first sync')
  await context.setOffline(true)
  // The browser's offline mode stops new connections; the open socket is
  // dropped as a lost network would drop it. (A reconnect the browser let
  // through before its offline mode took hold is dropped again.)
  await until(async () => {
    await page.evaluate(() => window.collab.connection.provider.ws?.close())
    return (await status(page)).startsWith('offline')
  }, 'offline shown')
  const box = await page.locator('[data-testid="xy"]').boundingBox()
  for (let k = 0; k < 3; k++) await page.mouse.click(box.x + 300 + 30 * k, box.y + 300)
  out.offlineStatus = await status(page)
  // Wait until this browser's copy holds them (y-indexeddb writes asynchronously).
  const dbName = `collab/${new URL(base).host}/${annotation}/skeleton`
  await until(
    () =>
      page.evaluate(
        (name) =>
          new Promise((resolve) => {
            const request = indexedDB.open(name)
            request.onsuccess = () => {
              const count = request.result.transaction('updates').objectStore('updates').count()
              count.onsuccess = () => resolve(count.result >= 3)
            }
            request.onerror = () => resolve(false)
          }),
        dbName,
      ),
    'changes kept in IndexedDB',
  )
  await page.close()
  await context.setOffline(false)
  page = await open()
  out.reopenedStatus = await until(async () => {
    const text = await status(page)
    return text.startsWith('saved') ? text : null
  }, 'saved after reopening', 15000)
  out.nodes = Number(await page.locator('[data-testid="node-count"]').textContent())
} finally {
  await browser.close()
}
console.log(JSON.stringify(out))
