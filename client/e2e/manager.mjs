// A manager's dashboard: the project with its task progress, its instances,
// one assigned to an annotator from the page.
//   node e2e/manager.mjs <base-url> <manager token> <project id> <annotator user id>
import { launch, until } from './browser.mjs'

const [base, token, project, annotator] = process.argv.slice(2)
const browser = await launch()
const out = {}
try {
  const page = await (await browser.newContext({ viewport: { width: 1280, height: 800 } })).newPage()
  page.on('pageerror', (error) => console.error('page error:', error.message))
  await page.goto(`${base}/?token=${token}`)
  const item = page.locator(`[data-project="${project}"]`)
  await until(() => item.isVisible(), 'project listed')
  out.summary = (await item.textContent()).split('tasks')[0].trim()
  await item.locator('button').click()
  const row = item.locator('tr[data-instance]').first()
  await until(() => row.isVisible(), 'instances listed')
  out.before = await row.locator('td').nth(2).textContent()
  await row.locator('input').fill(annotator)
  await row.locator('button').click()
  out.after = await until(async () => {
    const state = await item.locator('tr[data-instance]').first().locator('td').nth(2).textContent()
    return state === 'in progress' ? state : null
  }, 'assigned')
  // A task type and a task made from the page.
  await page.fill('[data-testid="new-task-type"] input[name="name"]', 'paint')
  await page.click('[data-testid="new-task-type"] button')
  out.taskTypes = await until(async () => {
    const items = await page.locator('[data-testid="task-types"] li').allTextContents()
    return items.some((t) => t.startsWith('paint')) ? items : null
  }, 'task type listed')
  await page.fill('[data-testid="new-tasks"] input[name="position"]', '5,6,7')
  await page.fill('[data-testid="new-tasks"] input[name="instances"]', '2')
  await page.click('[data-testid="new-tasks"] button')
  out.created = await until(async () => {
    const t = await page.locator('[data-testid="new-tasks-status"]').textContent()
    return t ? t : null
  }, 'tasks created')
} finally {
  await browser.close()
}
console.log(JSON.stringify(out))
