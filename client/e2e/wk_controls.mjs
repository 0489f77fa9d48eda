// WEBKNOSSOS's tracing controls in the page: Delete in the middle of a
// chain splits the tree, Shift+Alt+click joins two trees, dragging a node
// moves it, Ctrl+click places a node without activating it.
//   node e2e/wk_controls.mjs <base-url> <annotation> <token>
import { launch, openAnnotation, until } from './browser.mjs'

const [base, annotation, token] = process.argv.slice(2)
const browser = await launch()
const out = {}
try {
  const page = await openAnnotation(browser, base, annotation, token)
  const status = page.locator('[data-testid="status"]')
  const box = await page.locator('[data-testid="xy"]').boundingBox()
  const at = (x, y) => [box.x + x, box.y + y]
  const state = () =>
    page.evaluate(() => {
      const sk = window.collab.skeleton
      return {
        trees: sk.trees.size,
        nodes: sk.nodes.size,
        edges: sk.edges.size,
        active: document.querySelector('[data-testid="active-node"]').textContent,
        positions: Object.fromEntries([...sk.nodes.entries()].map(([id, n]) => [id, n.position])),
      }
    })
  for (const [x, y] of [[100, 100], [160, 100], [220, 100]]) await page.mouse.click(...at(x, y))
  const chain = await state()
  out.chain = { trees: chain.trees, nodes: chain.nodes, edges: chain.edges }
  const ids = Object.keys(chain.positions)
  await page.mouse.click(...at(160, 100)) // select the middle node
  await page.keyboard.press('Delete')
  out.afterDelete = await until(async () => {
    const s = await state()
    return s.nodes === 2 ? { trees: s.trees, edges: s.edges } : null
  }, 'middle node deleted')
  await page.mouse.click(...at(100, 100)) // the first node active again
  await page.keyboard.down('Shift')
  await page.keyboard.down('Alt')
  await page.mouse.click(...at(220, 100))
  await page.keyboard.up('Alt')
  await page.keyboard.up('Shift')
  out.afterJoin = await until(async () => {
    const s = await state()
    return s.trees === 1 ? { trees: s.trees, edges: s.edges } : null
  }, 'trees joined')
  await page.mouse.move(...at(220, 100))
  await page.mouse.down()
  await page.mouse.move(...at(230, 120), { steps: 5 })
  await page.mouse.up()
  out.moved = (await state()).positions[ids[2]]
  const before = (await state()).active
  await page.keyboard.down('Control')
  await page.mouse.click(...at(300, 200))
  await page.keyboard.up('Control')
  const after = await state()
  out.ctrlPlaced = { nodes: after.nodes, activeKept: after.active === before }
  await until(async () => (await status.textContent()).startsWith('saved'), 'saved')
} finally {
  await browser.close()
}
console.log(JSON.stringify(out))
