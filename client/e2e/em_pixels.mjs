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
  // What is on screen (the WebGL volume under the skeleton's canvas): a
  // screenshot of the plane, decoded in the page.
  const shot = await page.locator('[data-testid="xy"]').screenshot()
  out.screenshotBytes = shot.length
  const seen = await page.evaluate(
    async ({ png, probes, cx, cy, z }) => {
      const image = new Image()
      image.src = `data:image/png;base64,${png}`
      await image.decode()
      const canvas = document.createElement('canvas')
      canvas.width = image.width
      canvas.height = image.height
      const ctx = canvas.getContext('2d')
      ctx.drawImage(image, 0, 0)
      const data = ctx.getImageData(0, 0, canvas.width, canvas.height).data
      const at = (x, y) => [...data.slice(4 * (y * canvas.width + x), 4 * (y * canvas.width + x) + 3)]
      const pixels = probes.map(([x, y]) =>
        at(Math.floor(canvas.width / 2 + (x - cx) * z + z / 2), Math.floor(canvas.height / 2 + (y - cy) * z + z / 2)),
      )
      const greys = new Set()
      for (let i = 0; i < data.length; i += 4 * 97) greys.add(data[i])
      return { pixels, distinctGreys: greys.size }
    },
    { png: shot.toString('base64'), probes, cx, cy, z },
  )
  out.pixels = seen.pixels
  out.distinctGreys = seen.distinctGreys
} finally {
  await browser.close()
}
console.log(JSON.stringify(out))
