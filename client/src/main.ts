// Routes: `/` the dashboard (or sign-in), `/annotations/{id}?token=…` an
// annotation (../shared/contract.md, "The browser client").

import { Api } from './api'
import { currentToken, keepToken, urlToken } from './auth'
import { dashboard, signIn } from './pages/dashboard'
import { viewer } from './pages/viewer'
import './style.css'

async function main(): Promise<void> {
  const root = document.getElementById('app') as HTMLElement
  const token = currentToken()
  if (!token) {
    signIn(root)
    return
  }
  const api = new Api(token)
  const match = /^\/annotations\/(\d+)\/?$/.exec(location.pathname)
  if (match) {
    await viewer(root, api, Number(match[1]))
    return
  }
  if (urlToken()) {
    keepToken(token) // the demo's signed-in link: remembered, then a clean URL
    history.replaceState(null, '', '/')
  }
  await dashboard(root, api)
}

main().catch((error) => {
  const root = document.getElementById('app') as HTMLElement
  root.innerHTML = `<main class="narrow"><p class="error" data-testid="error"></p><a href="/">back</a></main>`
  ;(root.querySelector('.error') as HTMLElement).textContent = String(error?.message ?? error)
})
