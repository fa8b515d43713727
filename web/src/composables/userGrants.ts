// Role grants with an optional expiry, between the API (`RoleGrant`, UTC instants) and the form
// (one checkbox and one `<input type="datetime-local">` per role, in the browser's time zone).

import type { Schemas } from '../api/client'

export interface GrantDraft {
  on: boolean
  /** `YYYY-MM-DDTHH:mm` in local time, or '' for a grant that never lapses. */
  expires: string
}

export type GrantDrafts = Record<number, GrantDraft>

const pad = (n: number) => String(n).padStart(2, '0')

/** An instant as a `datetime-local` input holds it: local time, to the minute. */
export function toLocalInput(value: string | Date | null | undefined): string {
  if (!value) return ''
  const date = value instanceof Date ? value : new Date(value)
  if (Number.isNaN(date.getTime())) return ''
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}T${pad(date.getHours())}:${pad(date.getMinutes())}`
}

/**
 * A `datetime-local` value as the UTC instant the API takes; `null` when empty. Anything the
 * browser cannot read is passed on as typed, so the API refuses it rather than the grant silently
 * becoming permanent.
 */
export function fromLocalInput(local: string): string | null {
  if (!local.trim()) return null
  const date = new Date(local)
  return Number.isNaN(date.getTime()) ? local : date.toISOString()
}

/** The same time tomorrow, for the common "expires tomorrow" grant. */
export function tomorrow(now = new Date()): string {
  return toLocalInput(new Date(now.getTime() + 24 * 3600 * 1000))
}

export function isExpired(expiresAt: string | null | undefined, now = new Date()): boolean {
  return !!expiresAt && new Date(expiresAt).getTime() <= now.getTime()
}

/**
 * The form's starting point for a user's grants. Lapsed grants start unticked: they give nothing,
 * and the API refuses to store an expiry in the past, so keeping one would fail the save. The
 * admin renews one by ticking it with a new expiry.
 */
export function draftsFrom(roles: Schemas['UserRoleView'][], now = new Date()): GrantDrafts {
  const drafts: GrantDrafts = {}
  for (const role of roles) {
    drafts[role.role_id] = isExpired(role.expires_at, now) ? { on: false, expires: '' } : { on: true, expires: toLocalInput(role.expires_at) }
  }
  return drafts
}

/** The complete set of grants to send, in the order roles are listed (`order`). */
export function grantsOf(drafts: GrantDrafts, order: number[]): Schemas['RoleGrant'][] {
  return order
    .filter((id) => drafts[id]?.on)
    .map((id) => {
      const expires = fromLocalInput(drafts[id]!.expires)
      return expires ? { role_id: id, expires_at: expires } : { role_id: id }
    })
}

/**
 * The API names a refused grant by its position (`roles[1].expires_at`); the form shows it beside
 * the role, so map positions back to role ids.
 */
export function errorsByRole(fieldErrors: Record<string, string>, grants: Schemas['RoleGrant'][]): Record<number, string> {
  const byRole: Record<number, string> = {}
  for (const [field, message] of Object.entries(fieldErrors)) {
    const match = /^roles\[(\d+)\]/.exec(field)
    const grant = match ? grants[Number(match[1])] : undefined
    if (grant) byRole[grant.role_id] = byRole[grant.role_id] ? `${byRole[grant.role_id]}; ${message}` : message
  }
  return byRole
}
