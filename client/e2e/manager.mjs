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
} finally {
  await browser.close()
}
console.log(JSON.stringify(out))
