// The console's session lives in HttpOnly cookies the script cannot read. What the script does:
// echo the CSRF cookie in `X-CSRF-Token`, and on a 401 refresh the session once — one refresh
// at a time across every open tab (Web Locks), skipped when another tab already did it — then
// repeat the request.

export const CSRF_COOKIE = 'wework_csrf'
export const CSRF_HEADER = 'X-CSRF-Token'
const REFRESH_PATH = '/api/v1/auth/session/refresh'

export function readCookie(name: string, cookies = document.cookie): string | undefined {
  for (const pair of cookies.split(';')) {
    const [key, ...rest] = pair.trim().split('=')
    if (key === name) return decodeURIComponent(rest.join('=')) || undefined
  }
  return undefined
}

type Listener = () => void
let onSignedOut: Listener = () => {}

/** Called when the session is gone for good (refresh refused). */
export function whenSignedOut(listener: Listener) {
  onSignedOut = listener
}

let inFlight: Promise<boolean> | null = null

/** Refreshes the session unless the CSRF cookie moved on since `seen` (another tab did it). */
export function refreshSession(seen: string | undefined): Promise<boolean> {
  inFlight ??= withLock(async () => {
    const current = readCookie(CSRF_COOKIE)
    if (current && current !== seen) return true
    const response = await fetch(REFRESH_PATH, {
      method: 'POST',
      credentials: 'same-origin',
      headers: { [CSRF_HEADER]: current ?? '' },
    })
    return response.ok
  }).finally(() => {
    inFlight = null
  })
  return inFlight
}

function withLock<T>(work: () => Promise<T>): Promise<T> {
  const locks = (globalThis.navigator as Navigator | undefined)?.locks
  return locks ? (locks.request('wework-session-refresh', work) as Promise<T>) : work()
}

function isSignInCall(url: string): boolean {
  const path = new URL(url, location.origin).pathname
  return path === '/api/v1/auth/session' || path === REFRESH_PATH
}

/** `fetch` for the API client: CSRF header on, one refresh-and-retry on 401. */
export async function sessionFetch(request: Request): Promise<Response> {
  const seen = readCookie(CSRF_COOKIE)
  const retry = request.clone()
  const response = await fetch(withCsrf(request, seen))
  if (response.status !== 401 || isSignInCall(request.url)) return response
  if (!(await refreshSession(seen))) {
    onSignedOut()
    return response
  }
  return fetch(withCsrf(retry, readCookie(CSRF_COOKIE)))
}

function withCsrf(request: Request, csrf: string | undefined): Request {
  if (csrf) request.headers.set(CSRF_HEADER, csrf)
  return request
}
