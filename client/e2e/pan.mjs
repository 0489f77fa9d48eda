// Panning for the benchmarks: an arrow key pressed for `ms` while the page
// records its frame intervals (requestAnimationFrame). `everyMs` 0 presses
// as fast as the driver can (~100 presses/s here, each a round trip through
// the DevTools protocol in the browser's own process); 33 is a key held down
// at a keyboard's repeat rate (~30/s).
export async function pan(page, ms, everyMs = 0, key = 'ArrowRight') {
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
  const stopAt = Date.now() + ms
  let presses = 0
  while (Date.now() < stopAt) {
    const next = Date.now() + everyMs
    await page.keyboard.press(key)
    presses++
    const wait = next - Date.now()
    if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait))
  }
  const frames = await page.evaluate(() => window.__frames.slice(1))
  const sorted = [...frames].sort((a, b) => a - b)
  const pct = (p) => sorted[Math.min(sorted.length - 1, Math.round((p / 100) * (sorted.length - 1)))]
  return { presses, frames: frames.length, p50: pct(50), p95: pct(95), max: sorted[sorted.length - 1] }
}
