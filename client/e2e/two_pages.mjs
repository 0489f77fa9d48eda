// Two pages trace one annotation together (issue "The browser client",
// first test): A places five nodes with clicks; B shows them, and A's
// cursor; Ctrl+Z on A removes A's last node only, never B's; the server
// stores what was done. Prints one JSON line of what it saw.
//   node e2e/two_pages.mjs <base-url> <annotation> <token A> <token B>
import { launch, openAnnotation, until } from './browser.mjs'

const [base, annotation, tokenA, tokenB] = process.argv.slice(2)
const browser = await launch()
const out = {}
try {
  // A context each, as two people's browsers: nothing shared (storage,
  // BroadcastChannel), so what B sees came through the server.
  const open = (token) => openAnnotation(browser, base, annotation, token)
  const a = await open(tokenA)
  const b = await open(tokenB)
  const count = (page) => page.locator('[data-testid="node-count"]').textContent().then(Number)
  const canvas = a.locator('[data-testid="xy"]')
  const box = await canvas.boundingBox()
  const clickedAt = []
  for (let k = 0; k < 5; k++) {
    await a.mouse.move(box.x + 300 + 40 * k, box.y + 250 + 10 * k)
    await a.mouse.down()
    await a.mouse.up()
    clickedAt.push(Date.now())
  }
  // The count is drawn on the next animation frame: wait for it (a lost
  // click would leave it at 4 and time out with the count seen).
  out.countA = await until(async () => ((await count(a)) === 5 ? 5 : null), 'five nodes on A', 3000).catch(() =>
    count(a),
  )
  await until(async () => (await count(b)) === 5, 'five nodes on B', 5000)
  out.seenOnBAfterMs = Date.now() - clickedAt[4]
  // A's cursor (awareness) is listed and drawn on B.
  out.peersOnB = await until(
    () => b.locator('[data-testid="peers"] li').allTextContents().then((t) => (t.length ? t : null)),
    "A's presence on B",
  )
  // B adds a node of its own; A undoes: only A's last node goes.
  const boxB = await b.locator('[data-testid="xy"]').boundingBox()
  await b.mouse.click(boxB.x + 200, boxB.y + 500)
  await until(async () => (await count(a)) === 6, "B's node on A")
  await a.locator('[data-testid="xy"]').focus()
  await a.keyboard.press('Control+z')
  await until(async () => (await count(b)) === 5, 'undo reaching B')
  out.afterUndo = { a: await count(a), b: await count(b) }
  out.bNodeKept = await b.evaluate(() => {
    const sk = window.collab.skeleton
    return [...sk.nodes.keys()].filter((id) => id.startsWith(`${sk.doc.clientID}-`)).length
  })
  // Everything reaches the server's log: A's page shows its saved version.
  out.savedA = await until(async () => {
    const s = await a.locator('[data-testid="status"]').getAttribute('data-saved')
    const text = await a.locator('[data-testid="status"]').textContent()
    return text.startsWith('saved') && Number(s) >= 7 ? Number(s) : null
  }, 'saved acks').catch(async (error) => {
    const status = await a.locator('[data-testid="status"]').textContent()
    const saved = await a.locator('[data-testid="status"]').getAttribute('data-saved')
    throw new Error(`${error.message}: A shows "${status}" (saved ${saved})`)
  })
} finally {
  await browser.close()
}
console.log(JSON.stringify(out))
