// The sign-in history's filters. The API filters by user id; people know user names, so the page
// looks the name up first (`pickUser`) and sends the id.

import type { Schemas } from '../api/client'
import { fromLocalInput } from './userGrants'

export const LOGIN_RESULTS = ['success', 'failure'] as const

export interface LoginFilters {
  /** A user name, or a user id for an admin who may not list users. */
  user: string
  ip: string
  result: '' | (typeof LOGIN_RESULTS)[number]
  /** `datetime-local` values, local time. */
  from: string
  to: string
}

export function emptyLoginFilters(): LoginFilters {
  return { user: '', ip: '', result: '', from: '', to: '' }
}

/** The one user whose name is exactly `name` (case aside) among search results. */
export function pickUser(users: Pick<Schemas['UserView'], 'id' | 'username'>[], name: string): number | null {
  const wanted = name.trim().toLowerCase()
  return users.find((u) => u.username.toLowerCase() === wanted)?.id ?? null
}

/** A typed user id, or null when the text is not one. */
export function parseUserId(text: string): number | null {
  return /^\s*[1-9]\d{0,17}\s*$/.test(text) ? Number(text) : null
}

/** The API's query: blanks left out, times as UTC instants, the user as its id. */
export function loginLogQuery(filters: LoginFilters, userId: number | null) {
  return {
    user_id: userId ?? undefined,
    ip: filters.ip.trim() || undefined,
    result: filters.result || undefined,
    from: fromLocalInput(filters.from) ?? undefined,
    to: fromLocalInput(filters.to) ?? undefined,
  }
}
