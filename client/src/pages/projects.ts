// Managers' and reviewers' part of the dashboard: projects with their task
// progress; a project's tasks and instances (who holds which, in what
// state, a link to each annotation); managers assign or reassign an
// instance; reviewers find the finished ones to review.

import { type Api, ApiError } from '../api'

interface Project {
  id: number
  name: string
  paused: boolean
  priority: number
  instances?: Record<string, number>
}

interface Instance {
  id: number
  state: string
  annotator: number | null
  annotation: number | null
}

const STATES = ['open', 'in_progress', 'finished', 'accepted', 'rejected', 'cancelled']

interface TaskType {
  id: number
  name: string
  modes: string[]
}

export async function projectsSection(root: HTMLElement, api: Api, manager: boolean): Promise<void> {
  const { projects } = await api.call<{ projects: Project[] }>('GET', '/api/projects')
  const { taskTypes } = await api.call<{ taskTypes: TaskType[] }>('GET', '/api/tasktypes')
  const section = document.createElement('section')
  section.dataset.testid = 'projects'
  section.innerHTML = '<h2>Projects</h2><ul></ul><h2>To review</h2><ul data-testid="to-review"></ul>'
  root.append(section)
  if (manager) section.append(managerForms(api, projects, taskTypes))
  const list = section.querySelector('ul') as HTMLElement
  const toReview = section.querySelector('[data-testid="to-review"]') as HTMLElement
  for (const project of projects) {
    const full = await api.call<Project>('GET', `/api/projects/${project.id}`)
    const li = document.createElement('li')
    li.dataset.project = String(project.id)
    const counts = STATES.map((s) => `${s.replace('_', ' ')} ${full.instances?.[s] ?? 0}`).join(' · ')
    const open = document.createElement('button')
    open.textContent = 'tasks'
    li.append(`${project.name}${project.paused ? ' (paused)' : ''} — ${counts} `, open)
    const details = document.createElement('table')
    details.className = 'instances'
    details.hidden = true
    li.append(details)
    open.addEventListener('click', async () => {
      details.hidden = !details.hidden
      if (!details.hidden) await fillTasks(api, project.id, details, manager)
    })
    list.append(li)
    // Finished instances wait for a reviewer.
    const { tasks } = await api.call<{ tasks: { id: number }[] }>('GET', `/api/tasks?project=${project.id}&limit=200`)
    for (const task of tasks) {
      const { instances } = await api.call<{ instances: Instance[] }>('GET', `/api/tasks/${task.id}`)
      for (const instance of instances.filter((i) => i.state === 'finished' && i.annotation)) {
        const item = document.createElement('li')
        const link = document.createElement('a')
        link.href = `/annotations/${instance.annotation}`
        link.textContent = `${project.name}: task ${task.id}, instance ${instance.id}, annotator ${instance.annotator}`
        item.append(link)
        toReview.append(item)
      }
    }
  }
}

async function fillTasks(api: Api, project: number, table: HTMLTableElement, manager: boolean): Promise<void> {
  table.innerHTML = '<tr><th>task</th><th>instance</th><th>state</th><th>annotator</th><th>annotation</th><th></th></tr>'
  const { tasks } = await api.call<{ tasks: { id: number }[] }>('GET', `/api/tasks?project=${project}&limit=200`)
  for (const task of tasks) {
    const { instances } = await api.call<{ instances: Instance[] }>('GET', `/api/tasks/${task.id}`)
    for (const instance of instances) {
      const row = table.insertRow()
      row.dataset.instance = String(instance.id)
      for (const value of [task.id, instance.id, instance.state.replace('_', ' '), instance.annotator ?? '–']) {
        row.insertCell().textContent = String(value)
      }
      const cell = row.insertCell()
      if (instance.annotation) {
        const link = document.createElement('a')
        link.href = `/annotations/${instance.annotation}`
        link.textContent = `#${instance.annotation}`
        cell.append(link)
      }
      const actions = row.insertCell()
      if (manager && ['open', 'in_progress', 'rejected'].includes(instance.state)) {
        const user = document.createElement('input')
        user.placeholder = 'user id'
        user.size = 6
        const assign = document.createElement('button')
        assign.textContent = instance.annotator ? 'reassign' : 'assign'
        assign.addEventListener('click', async () => {
          try {
            await api.call('POST', `/api/instances/${instance.id}/assign`, { user: Number(user.value) })
            await fillTasks(api, project, table, manager)
          } catch (error) {
            actions.append(` ${error instanceof ApiError ? error.message : String(error)}`)
          }
        })
        actions.append(user, assign)
      }
    }
  }
}

/** Task types (list, create) and new tasks for a project, for managers. */
function managerForms(api: Api, projects: Project[], taskTypes: TaskType[]): HTMLElement {
  const box = document.createElement('div')
  box.innerHTML = `
    <h2>Task types</h2>
    <ul data-testid="task-types"></ul>
    <form data-testid="new-task-type">
      <input name="name" placeholder="name" required />
      <label><input type="checkbox" name="modes" value="skeleton" checked /> skeleton</label>
      <label><input type="checkbox" name="modes" value="volume" /> volume</label>
      <label><input type="checkbox" name="modes" value="proofreading" /> proofreading</label>
      <button>Add task type</button>
    </form>
    <h2>New tasks</h2>
    <form data-testid="new-tasks">
      <select name="project"></select> <select name="taskType"></select>
      <input name="dataset" placeholder="dataset (optional)" size="12" />
      <input name="position" placeholder="x,y,z" size="12" required />
      <input name="instances" type="number" min="1" value="1" style="width: 4em" />
      <button>Create</button> <span data-testid="new-tasks-status"></span>
    </form>`
  const list = box.querySelector('[data-testid="task-types"]') as HTMLElement
  const typeSelect = box.querySelector('select[name="taskType"]') as HTMLSelectElement
  const show = (t: TaskType) => {
    const li = document.createElement('li')
    li.textContent = `${t.name} (${t.modes.join(', ')})`
    list.append(li)
    typeSelect.append(new Option(t.name, String(t.id)))
  }
  taskTypes.forEach(show)
  const projectSelect = box.querySelector('select[name="project"]') as HTMLSelectElement
  for (const p of projects) projectSelect.append(new Option(p.name, String(p.id)))
  const typeForm = box.querySelector('[data-testid="new-task-type"]') as HTMLFormElement
  typeForm.addEventListener('submit', async (event) => {
    event.preventDefault()
    const data = new FormData(typeForm)
    const created = await api.call<TaskType>('POST', '/api/tasktypes', {
      name: data.get('name'),
      modes: data.getAll('modes'),
    })
    show(created)
    typeForm.reset()
  })
  const taskForm = box.querySelector('[data-testid="new-tasks"]') as HTMLFormElement
  const status = box.querySelector('[data-testid="new-tasks-status"]') as HTMLElement
  taskForm.addEventListener('submit', async (event) => {
    event.preventDefault()
    const data = new FormData(taskForm)
    const body: Record<string, unknown> = {
      project: Number(data.get('project')),
      taskType: Number(data.get('taskType')),
      position: String(data.get('position')).split(',').map(Number),
      instances: Number(data.get('instances')),
    }
    if (data.get('dataset')) body.dataset = data.get('dataset')
    try {
      const created = await api.call<{ ids: number[] }>('POST', '/api/tasks', body)
      status.textContent = `task ${created.ids.join(', ')} created`
    } catch (error) {
      status.textContent = error instanceof ApiError ? error.message : String(error)
    }
  })
  return box
}
