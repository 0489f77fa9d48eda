// The token the page acts with. A `?token=` in the URL wins (a share link, or
// the demo's signed-in link) and, when it is a user's token, is kept for the
// next visit; sign-out forgets it.

const KEY = 'collab.token'

export function urlToken(): string | null {
  return new URLSearchParams(location.search).get('token')
}

export function storedToken(): string | null {
  return localStorage.getItem(KEY)
}

export function currentToken(): string | null {
  return urlToken() ?? storedToken()
}

export function keepToken(token: string): void {
  localStorage.setItem(KEY, token)
}

export function signOut(): void {
  localStorage.removeItem(KEY)
}
