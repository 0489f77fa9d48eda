// EM data in view (issue "The browser client", first test list): the XY
// plane shows the bricks' voxels — the pixels at known positions are those
// voxels' grey values — and a screenshot is not blank.
//   node e2e/em_pixels.mjs <base-url> <annotation> <token> <pos x,y,z> <zoom> <probes JSON> [extra query]
// probes: [[x, y, …], ...] voxels of the slice z; the page's RGB there is printed.
import { launch, until } from './browser.mjs'

const [base, annotation, token, pos, zoom, probesJson, extra] = process.argv.slice(2)
const probes = JSON.parse(probesJson)
const browser = await launch()
const out = {}
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 800 } })
  page.on('pageerror', (error) => console.error('page error:', error.message))
  const started = Date.now()
  await page.goto(`${base}/annotations/${annotation}?token=${token}&pos=${pos}&zoom=${zoom}&${extra ?? ''}`)
  await until(
    () => page.locator('[data-testid="bricks"]').getAttribute('data-complete').then((v) => v === 'true'),
    'bricks in view loaded',
    15000,
  )
  out.loadedMs = Date.now() - started
  const [cx, cy] = pos.split(',').map(Number)
  const z = Number(zoom)
  out.pixels = await page.evaluate(
    ({ probes, cx, cy, z }) => {
      const canvas = document.querySelector('[data-testid="xy"]')
      const ctx = canvas.getContext('2d')
      return probes.map(([x, y]) => {
        const sx = Math.floor(canvas.width / 2 + (x - cx) * z + z / 2)
        const sy = Math.floor(canvas.height / 2 + (y - cy) * z + z / 2)
        const [r, g, b] = ctx.getImageData(sx, sy, 1, 1).data
        return [r, g, b]
      })
    },
    { probes, cx, cy, z },
  )
  const shot = await page.locator('[data-testid="xy"]').screenshot()
  out.screenshotBytes = shot.length
  out.distinctGreys = await page.evaluate(() => {
    const canvas = document.querySelector('[data-testid="xy"]')
    const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data
    const seen = new Set()
    for (let i = 0; i < data.length; i += 4 * 97) seen.add(data[i])
    return seen.size
  })
} finally {
  await browser.close()
}
console.log(JSON.stringify(out))
