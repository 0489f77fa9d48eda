import { launch, until } from './browser.mjs'
const [url] = process.argv.slice(2)
const browser = await launch()
const context = await browser.newContext({ viewport: { width: 1280, height: 800 } })
const page = await context.newPage()
await page.goto(url)
const complete = () => page.locator('[data-testid="bricks"]').getAttribute('data-complete').then((v) => v === 'true')
await until(complete, 'first', 30000)
const cdp = await context.newCDPSession(page)
await cdp.send('Profiler.enable')
await cdp.send('Profiler.setSamplingInterval', { interval: 200 })
await page.locator('[data-testid="xy"]').focus()
await cdp.send('Profiler.start')
const stopAt = Date.now() + 3000
let n = 0
while (Date.now() < stopAt) { await page.keyboard.press('ArrowRight'); n++; await new Promise((r) => setTimeout(r, 33)) }
const { profile } = await cdp.send('Profiler.stop')
const self = new Map()
const byId = new Map(profile.nodes.map((x) => [x.id, x]))
const dt = profile.timeDeltas
const counts = new Map()
for (let i = 0; i < profile.samples.length; i++) counts.set(profile.samples[i], (counts.get(profile.samples[i]) ?? 0) + (dt[i] ?? 0))
let total = 0
for (const [id, t] of counts) { const nd = byId.get(id); const k = `${nd.callFrame.functionName || '(anon)'} ${nd.callFrame.url.split('/').pop()}:${nd.callFrame.lineNumber}`; self.set(k, (self.get(k) ?? 0) + t); total += t }
console.log('presses', n, 'total ms', total / 1000)
for (const [k, t] of [...self].sort((a, b) => b[1] - a[1]).slice(0, 25)) console.log((t / 1000).toFixed(0).padStart(7), k)
await browser.close()
