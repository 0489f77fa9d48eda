// Editing from the page: a comment and a radius on the active node, a tree
// renamed and hidden in the tree list, an NML imported and the annotation
// downloaded as NML.
//   node e2e/editing.mjs <base-url> <annotation> <token> <nml-to-import> <download-to>
import { launch, until } from './browser.mjs'

const [base, annotation, token, nmlPath, downloadTo] = process.argv.slice(2)
const browser = await launch()
const out = {}
try {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 }, acceptDownloads: true })
  const page = await context.newPage()
  page.on('pageerror', (error) => console.error('page error:', error.message))
  await page.goto(`${base}/annotations/${annotation}?token=${token}&pos=100,100,10`)
  const status = page.locator('[data-testid="status"]')
  await until(async () => (await status.textContent()).startsWith('saved'), 'synced')
  const box = await page.locator('[data-testid="xy"]').boundingBox()
  await page.mouse.click(box.x + 200, box.y + 200)
  await page.mouse.click(box.x + 260, box.y + 220)
  await page.fill('[data-testid="comment"]', 'soma here')
  await page.press('[data-testid="comment"]', 'Enter')
  await page.fill('[data-testid="radius"]', '4.5')
  await page.press('[data-testid="radius"]', 'Enter')
  page.once('dialog', (dialog) => dialog.accept('axon 1'))
  await page.dblclick('[data-testid="trees"] li .tree-name')
  await until(async () => (await page.locator('[data-testid="trees"]').textContent()).includes('axon 1'), 'renamed')
  await page.setInputFiles('[data-testid="nml-import"]', nmlPath)
  out.imported = await until(async () => {
    const t = await page.locator('[data-testid="nml-status"]').textContent()
    return t.startsWith('imported') || t.startsWith('not') ? t : null
  }, 'import answered')
  out.trees = await until(async () => {
    const items = await page.locator('[data-testid="trees"] li').allTextContents()
    return items.length >= 2 ? items : null
  }, 'imported tree listed')
  // Merge the imported tree into the active one, then put it in a new group.
  await page.locator('[data-testid="trees"] li', { hasText: 'imported' }).locator('.tree-merge').click()
  out.afterMerge = await until(async () => {
    const items = await page.locator('[data-testid="trees"] li[data-tree]').allTextContents()
    return items.length === 1 ? items : null
  }, 'trees merged')
  page.once('dialog', (dialog) => dialog.accept('cells'))
  await page.click('[data-testid="new-group"]')
  await until(() => page.locator('[data-testid="trees"] li.group').isVisible(), 'group made')
  const group = await page.locator('[data-testid="trees"] li.group').getAttribute('data-group')
  await page.locator('[data-testid="trees"] li[data-tree] .tree-group').selectOption(group)
  await until(() => page.locator('[data-testid="trees"] li.group li[data-tree]').isVisible(), 'tree in group')
  await until(async () => (await status.textContent()).startsWith('saved'), 'all saved')
  const [download] = await Promise.all([page.waitForEvent('download'), page.click('[data-testid="nml-export"]')])
  await download.saveAs(downloadTo)
  out.downloaded = download.suggestedFilename()
} finally {
  await browser.close()
}
console.log(JSON.stringify(out))
