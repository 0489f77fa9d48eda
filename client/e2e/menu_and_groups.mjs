// The right-click menu (WEBKNOSSOS's default controls) and the tree list's
// groups: right click on a node offers its actions (branchpoint, merge with
// the active node's tree, path length), on empty space "Create node here";
// trees and groups are dragged into groups and back to the top level, a
// tree is recoloured, a group deleted (its content moves up).
//   node e2e/menu_and_groups.mjs <base-url> <annotation> <token>
import { launch, openAnnotation, until } from './browser.mjs'

const [base, annotation, token] = process.argv.slice(2)
const browser = await launch()
const out = {}
try {
  const page = await openAnnotation(browser, base, annotation, token)
  const box = await page.locator('[data-testid="xy"]').boundingBox()
  const at = (x, y) => [box.x + x, box.y + y]
  const state = () =>
    page.evaluate(() => {
      const sk = window.collab.skeleton
      return {
        trees: sk.trees.size,
        nodes: sk.nodes.size,
        branchpoints: sk.branchpoints.size,
        groups: Object.fromEntries([...sk.groups.entries()].map(([id, g]) => [g.get('name'), g.get('parentId') ?? null])),
        groupNames: Object.fromEntries([...sk.groups.entries()].map(([id, g]) => [id, g.get('name')])),
        treeGroups: [...sk.trees.values()].map((t) => t.get('groupId') ?? null),
        colours: [...sk.trees.values()].map((t) => t.get('color')),
      }
    })
  const rightClick = (x, y) => page.mouse.click(...at(x, y), { button: 'right' })
  const menuItems = () => page.locator('[data-testid="context-menu"] li').allTextContents()
  // Two nodes of tree 1 with clicks; a third from the menu on empty space.
  await page.mouse.click(...at(100, 100))
  await page.mouse.click(...at(160, 100))
  await rightClick(220, 100)
  out.emptyMenu = await until(async () => {
    const items = await menuItems()
    return items.length ? items : null
  }, 'menu on empty space')
  await page.click('[data-testid="menu-create-node"]')
  out.afterCreate = await until(async () => ((await state()).nodes === 3 ? 3 : null), 'node from the menu')
  out.menuGone = (await page.locator('[data-testid="context-menu"]').count()) === 0
  // The middle node's menu: branchpoint, and its tree's path length (2 edges of 60 px at zoom 1).
  await rightClick(160, 100)
  out.nodeMenu = await until(async () => {
    const items = await menuItems()
    return items.length ? items : null
  }, 'menu on a node')
  await page.click('[data-testid="menu-branchpoint"]')
  out.branchpoints = await until(async () => (await state()).branchpoints || null, 'branchpoint')
  // A second tree (C, then a node), then merge tree 1 into it from a tree-1 node's menu.
  await page.locator('[data-testid="xy"]').focus()
  await page.keyboard.press('c')
  await page.mouse.click(...at(100, 250))
  await until(async () => ((await state()).trees === 2 ? 2 : null), 'second tree')
  await rightClick(100, 100)
  await page.click('[data-testid="menu-merge"]')
  out.afterMerge = await until(async () => ((await state()).trees === 1 ? 1 : null), 'merged from the menu')
  // Groups: "outer" and "inner"; drag the tree into inner, inner into outer.
  for (const name of ['outer', 'inner']) {
    page.once('dialog', (dialog) => dialog.accept(name))
    await page.click('[data-testid="new-group"]')
    await until(async () => (name in (await state()).groups ? true : null), `group ${name}`)
  }
  const groupTitle = (name) => page.locator('[data-testid="trees"] li.group > .group-name', { hasText: name })
  await page.locator('[data-testid="trees"] li[data-tree] .tree-name').dragTo(groupTitle('inner'))
  out.treeInInner = await until(async () => {
    const s = await state()
    return s.treeGroups[0] && s.groupNames[s.treeGroups[0]] === 'inner' ? true : null
  }, 'tree dragged into inner')
  await groupTitle('inner').dragTo(groupTitle('outer'))
  out.groupsAfterDrag = await until(async () => {
    const s = await state()
    const outerId = Object.entries(s.groupNames).find(([, n]) => n === 'outer')[0]
    return s.groups.inner === outerId ? s.groups : null
  }, 'inner dragged into outer')
  // Recolour the tree to red.
  await page.locator('[data-testid="trees"] .tree-color').fill('#ff0000')
  out.colour = await until(async () => {
    const c = (await state()).colours[0]
    return c && c[0] === 1 && c[1] === 0 ? c : null
  }, 'recoloured')
  // Delete "inner": the tree moves up into "outer".
  await page.locator('[data-testid="trees"] li.group', { hasText: 'inner' }).last().locator('.group-delete').last().click()
  out.afterGroupDelete = await until(async () => {
    const s = await state()
    return !('inner' in s.groups) ? s.groupNames[s.treeGroups[0]] ?? null : null
  }, 'inner deleted')
  const status = page.locator('[data-testid="status"]')
  await until(async () => (await status.textContent()).startsWith('saved'), 'saved')
} finally {
  await browser.close()
}
console.log(JSON.stringify(out))
