// A task from the page (issue "The browser client", dashboard and review):
// the annotator gets the next task from the dashboard, traces a node and
// finishes it; the reviewer opens it and rejects it with a reason.
//   node e2e/task.mjs <base-url> <annotator token> <reviewer token>
import { launch, until } from './browser.mjs'

const [base, annotatorToken, reviewerToken] = process.argv.slice(2)
const browser = await launch()
const out = {}
try {
  const annotator = await (await browser.newContext({ viewport: { width: 1280, height: 800 } })).newPage()
  annotator.on('pageerror', (error) => console.error('page error:', error.message))
  await annotator.goto(`${base}/?token=${annotatorToken}`)
  await annotator.click('[data-testid="next-task"]')
  await annotator.waitForURL(/\/annotations\/\d+/)
  out.annotation = Number(new URL(annotator.url()).pathname.split('/').pop())
  const status = annotator.locator('[data-testid="status"]')
  await until(async () => (await status.textContent()).startsWith('saved'), 'task opened')
  out.stateBefore = await annotator.locator('[data-testid="task-state"]').textContent()
  const box = await annotator.locator('[data-testid="xy"]').boundingBox()
  await annotator.mouse.click(box.x + 200, box.y + 200)
  await until(async () => (await status.textContent()).startsWith('saved') && Number(await status.getAttribute('data-saved')) >= 1, 'node saved')
  await annotator.click('[data-testid="finish"]')
  out.stateAfterFinish = await until(async () => {
    const t = await annotator.locator('[data-testid="task-state"]').textContent()
    return t === 'finished' ? t : null
  }, 'finished')
  const reviewer = await (await browser.newContext({ viewport: { width: 1280, height: 800 } })).newPage()
  reviewer.on('pageerror', (error) => console.error('page error:', error.message))
  await reviewer.goto(`${base}/annotations/${out.annotation}?token=${reviewerToken}`)
  await until(() => reviewer.locator('[data-testid="reject"]').isVisible(), 'review offered')
  // The count is drawn once the page has synced: wait for it (bounded; a
  // reviewer who never sees the node leaves 0 for the test to report).
  out.reviewerNodes = await until(
    async () => Number(await reviewer.locator('[data-testid="node-count"]').textContent()) || null,
    'the reviewer sees the node',
  ).catch(() => 0)
  reviewer.once('dialog', (dialog) => dialog.accept('the axon continues to the north'))
  await reviewer.click('[data-testid="reject"]')
  out.stateAfterReview = await until(async () => {
    const t = await reviewer.locator('[data-testid="task-state"]').textContent()
    return t === 'rejected' ? t : null
  }, 'rejected')
} finally {
  await browser.close()
}
console.log(JSON.stringify(out))
