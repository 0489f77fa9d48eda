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

export async function projectsSection(root: HTMLElement, api: Api, manager: boolean): Promise<void> {
  const { projects } = await api.call<{ projects: Project[] }>('GET', '/api/projects')
  const section = document.createElement('section')
  section.dataset.testid = 'projects'
  section.innerHTML = '<h2>Projects</h2><ul></ul><h2>To review</h2><ul data-testid="to-review"></ul>'
  root.append(section)
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
