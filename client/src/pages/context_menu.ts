// A right-click menu (WEBKNOSSOS's default controls: right click opens the
// node or position menu; classic controls place nodes with it instead).
// One menu at a time; it closes on a choice, Escape, or a click elsewhere.

export interface MenuItem {
  label: string
  testid: string
  run: () => void
}

let open: HTMLElement | null = null

export function closeContextMenu(): void {
  open?.remove()
  open = null
}

/** Show `items` at page position (x, y); a heading line when `title` is given. */
export function openContextMenu(x: number, y: number, title: string, items: MenuItem[]): void {
  closeContextMenu()
  const menu = document.createElement('ul')
  menu.className = 'context-menu'
  menu.dataset.testid = 'context-menu'
  menu.style.left = `${x}px`
  menu.style.top = `${y}px`
  const head = document.createElement('li')
  head.className = 'context-title'
  head.textContent = title
  menu.append(head)
  for (const item of items) {
    const li = document.createElement('li')
    li.textContent = item.label
    li.dataset.testid = item.testid
    li.addEventListener('mousedown', (event) => event.stopPropagation())
    li.addEventListener('click', () => {
      closeContextMenu()
      item.run()
    })
    menu.append(li)
  }
  menu.addEventListener('contextmenu', (event) => event.preventDefault())
  document.body.append(menu)
  open = menu
}

// Dismissal: any press outside the menu, or Escape.
// Capture: before the press that may open the next menu.
window.addEventListener(
  'mousedown',
  (event) => {
    if (open && !open.contains(event.target as Node)) closeContextMenu()
  },
  true,
)
window.addEventListener('keydown', (event) => {
  if (event.key === 'Escape') closeContextMenu()
})
