// The contact list's filters as the form holds them, and the query the API takes for them: one
// mapping, so the list and its CSV export always ask for the same contacts.
import type { operations } from '../api/schema'
import type { Schemas } from '../api/client'

export type ContactQuery = NonNullable<operations['list_contacts']['parameters']['query']>

/** A tag as a picker shows it: its id and the words to show. */
export interface TagChoice {
  id: number
  label: string
}

/** A yes / no filter: '' means either. */
export type YesNo = '' | 'yes' | 'no'

export interface ContactFilterState {
  q: string
  contactType: Schemas['ContactType'] | ''
  friendStatus: Schemas['FriendStatus'] | ''
  accountId: number | null
  instanceId: number | null
  tagsAny: TagChoice[]
  tagsAll: TagChoice[]
  isStar: YesNo
  isBlocked: YesNo
  /** Opted out of marketing (退订): 'yes' is the opt-out list. */
  unsubscribed: YesNo
  /** A `datetime-local` value, read in the browser's time zone. */
  updatedSince: string
  /** Only the contacts a saved segment selects. */
  segmentId: number | null
}

export function emptyContactFilters(): ContactFilterState {
  return {
    q: '',
    contactType: '',
    friendStatus: '',
    accountId: null,
    instanceId: null,
    tagsAny: [],
    tagsAll: [],
    isStar: '',
    isBlocked: '',
    unsubscribed: '',
    updatedSince: '',
    segmentId: null,
  }
}

function yesNo(value: YesNo): boolean | undefined {
  return value === '' ? undefined : value === 'yes'
}

function ids(tags: TagChoice[]): string | undefined {
  return tags.length ? tags.map((t) => t.id).join(',') : undefined
}

function instant(local: string): string | undefined {
  if (!local) return undefined
  const date = new Date(local)
  return Number.isNaN(date.getTime()) ? undefined : date.toISOString()
}

/** The API query for the filters; unset filters are left out. */
export function contactQuery(f: ContactFilterState): ContactQuery {
  const query: ContactQuery = {
    q: f.q.trim() || undefined,
    contact_type: f.contactType || undefined,
    friend_status: f.friendStatus || undefined,
    account_id: f.accountId ?? undefined,
    instance_id: f.instanceId ?? undefined,
    tags_any: ids(f.tagsAny),
    tags_all: ids(f.tagsAll),
    is_star: yesNo(f.isStar),
    is_blocked: yesNo(f.isBlocked),
    unsubscribed: yesNo(f.unsubscribed),
    updated_since: instant(f.updatedSince),
    segment_id: f.segmentId ?? undefined,
  }
  for (const key of Object.keys(query) as (keyof ContactQuery)[]) {
    if (query[key] === undefined) delete query[key]
  }
  return query
}

/** The CSV export of the contacts the filters select (downloaded with the session cookie). */
export function contactExportUrl(f: ContactFilterState): string {
  const params = new URLSearchParams()
  for (const [key, value] of Object.entries(contactQuery(f))) params.set(key, String(value))
  const query = params.toString()
  return query ? `/api/v1/contacts/export?${query}` : '/api/v1/contacts/export'
}
