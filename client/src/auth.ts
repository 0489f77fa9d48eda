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

export function forgetToken(): void {
  localStorage.removeItem(KEY)
}

/** Forget the token and this browser's copies of documents (a shared
 *  machine keeps nothing of the annotations after sign-out). Copies with
 *  unsaved changes go too: the page says how many are pending before. */
export async function signOut(): Promise<void> {
  forgetToken()
  const databases = (await indexedDB.databases?.()) ?? []
  await Promise.all(
    databases
      .filter((db) => db.name?.startsWith('collab/'))
      .map(
        (db) =>
          new Promise<void>((resolve) => {
            const request = indexedDB.deleteDatabase(db.name as string)
            request.onsuccess = request.onerror = request.onblocked = () => resolve()
          }),
      ),
  )
}
