// The start page: sign in with a token (kept in this browser), then my
// annotations (open, create on a dataset) and the datasets.

import { Api, ApiError } from '../api'
import { forgetToken, keepToken, signOut } from '../auth'
import { projectsSection } from './projects'

export function signIn(root: HTMLElement, problem?: string): void {
  root.innerHTML = `
    <main class="narrow">
      <h1>collab</h1>
      <form data-testid="sign-in">
        <label>Token <input name="token" autocomplete="off" size="48" placeholder="clb_…" /></label>
        <button>Sign in</button>
      </form>
      <p class="error" data-testid="error"></p>
    </main>`
  if (problem) (root.querySelector('[data-testid="error"]') as HTMLElement).textContent = problem
  const form = root.querySelector('form') as HTMLFormElement
  form.addEventListener('submit', (event) => {
    event.preventDefault()
    const token = String(new FormData(form).get('token') ?? '').trim()
    if (!token) return
    keepToken(token)
    location.assign('/')
  })
}

export async function dashboard(root: HTMLElement, api: Api): Promise<void> {
  let me
  try {
    me = await api.me()
  } catch (error) {
    forgetToken() // a bad token: asked again (this browser's copies stay)
    signIn(root, error instanceof ApiError ? error.message : String(error))
    return
  }
  if (me.link && me.annotation) {
    location.assign(`/annotations/${me.annotation}?token=${encodeURIComponent(api.token)}`)
    return
  }
  const [{ annotations }, { datasets }] = await Promise.all([api.annotations(), api.datasets()])
  root.innerHTML = `
    <header class="bar"><strong>collab</strong><span>${escape(me.name ?? '')}</span>
      <button data-testid="sign-out">Sign out</button></header>
    <main class="narrow">
      <h2>My tasks</h2>
      <p><button data-testid="next-task">Get the next task</button> <span data-testid="task-status"></span></p>
      <h2>My annotations</h2>
      <ul data-testid="annotations"></ul>
      <form data-testid="new-annotation">
        <input name="name" placeholder="name" required />
        <select name="dataset"><option value="">no dataset</option></select>
        <button>Create</button>
      </form>
      <h2>Datasets</h2>
      <ul data-testid="datasets"></ul>
    </main>`
  const list = root.querySelector('[data-testid="annotations"]') as HTMLElement
  for (const a of annotations) {
    const li = document.createElement('li')
    const link = document.createElement('a')
    link.href = `/annotations/${a.id}`
    link.textContent = a.name
    li.append(link, ` ${a.dataset ?? ''} (${a.role ?? ''})`)
    list.append(li)
  }
  const select = root.querySelector('select') as HTMLSelectElement
  const datasetList = root.querySelector('[data-testid="datasets"]') as HTMLElement
  for (const d of datasets) {
    select.append(new Option(d.name, d.name))
    const li = document.createElement('li')
    li.textContent = `${d.name}${d.unavailable ? ' (unavailable)' : ''}`
    datasetList.append(li)
  }
  root.querySelector('[data-testid="next-task"]')?.addEventListener('click', async () => {
    const status = root.querySelector('[data-testid="task-status"]') as HTMLElement
    try {
      const next = await api.nextTask()
      location.assign(`/annotations/${next.annotation}`)
    } catch (error) {
      status.textContent = error instanceof ApiError && error.code === 'no_task' ? 'no task for you right now' : String(error)
    }
  })
  root.querySelector('[data-testid="sign-out"]')?.addEventListener('click', async () => {
    await signOut()
    location.assign('/')
  })
  const roles = me.roles ?? []
  if (roles.some((r) => r === 'manager' || r === 'reviewer' || r === 'admin')) {
    await projectsSection(root.querySelector('main') as HTMLElement, api, roles.includes('manager') || roles.includes('admin'))
  }
  const form = root.querySelector('[data-testid="new-annotation"]') as HTMLFormElement
  form.addEventListener('submit', async (event) => {
    event.preventDefault()
    const data = new FormData(form)
    const created = await api.createAnnotation(String(data.get('name')), String(data.get('dataset')) || null)
    location.assign(`/annotations/${created.id}`)
  })
}

function escape(text: string): string {
  return text.replace(/[&<>"]/g, (c) => `&#${c.charCodeAt(0)};`)
}
