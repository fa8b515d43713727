// A segment's filter as its editor holds it, and the API's AudienceFilter for it: one mapping, so
// the live count, the saved segment and what a broadcast reaches always agree.
import type { Schemas } from '../api/client'
import type { TagChoice, YesNo } from './contactFilters'

export type AudienceFilter = Schemas['AudienceFilter']

/** Replied or not to one task: '' leaves replies out of the filter. */
export type ReplyChoice = '' | 'replied' | 'silent'

export interface SegmentFilterState {
  q: string
  contactType: Schemas['ContactType'] | ''
  instanceIds: number[]
  accountIds: number[]
  groupIds: number[]
  tagsAny: TagChoice[]
  tagsAll: TagChoice[]
  /** 'yes': only those who opted out; 'no': only the others. */
  unsubscribed: YesNo
  reply: ReplyChoice
  replyTaskId: number | null
  /** `datetime-local` values, read in the browser's time zone. */
  lastChatAfter: string
  lastChatBefore: string
}

export function emptySegmentFilter(): SegmentFilterState {
  return {
    q: '',
    contactType: '',
    instanceIds: [],
    accountIds: [],
    groupIds: [],
    tagsAny: [],
    tagsAll: [],
    unsubscribed: '',
    reply: '',
    replyTaskId: null,
    lastChatAfter: '',
    lastChatBefore: '',
  }
}

function instant(local: string): string | null {
  if (!local) return null
  const date = new Date(local)
  return Number.isNaN(date.getTime()) ? null : date.toISOString()
}

/** A stored instant as a `datetime-local` value in the browser's time zone. */
function local(iso: string | null | undefined): string {
  if (!iso) return ''
  const date = new Date(iso)
  if (Number.isNaN(date.getTime())) return ''
  const pad = (n: number) => String(n).padStart(2, '0')
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}T${pad(date.getHours())}:${pad(date.getMinutes())}`
}

/** The API filter for the form; empty parts are left out. */
export function filterOf(s: SegmentFilterState): AudienceFilter {
  const filter: AudienceFilter = {}
  if (s.q.trim()) filter.q = s.q.trim()
  if (s.contactType) filter.contact_type = s.contactType
  if (s.instanceIds.length) filter.instance_ids = [...s.instanceIds]
  if (s.accountIds.length) filter.account_ids = [...s.accountIds]
  if (s.groupIds.length) filter.group_ids = [...s.groupIds]
  if (s.tagsAny.length) filter.tags_any = s.tagsAny.map((t) => t.id)
  if (s.tagsAll.length) filter.tags_all = s.tagsAll.map((t) => t.id)
  if (s.unsubscribed) filter.unsubscribed = s.unsubscribed === 'yes'
  if (s.reply && s.replyTaskId !== null) filter.replied = { task_id: s.replyTaskId, replied: s.reply === 'replied' }
  const after = instant(s.lastChatAfter)
  const before = instant(s.lastChatBefore)
  if (after) filter.last_chat_after = after
  if (before) filter.last_chat_before = before
  return filter
}

/** The form for a stored filter; tags show by id until their names are looked up. */
export function stateOf(f: AudienceFilter, tagLabel: (id: number) => string = String): SegmentFilterState {
  return {
    q: f.q ?? '',
    contactType: f.contact_type ?? '',
    instanceIds: [...(f.instance_ids ?? [])],
    accountIds: [...(f.account_ids ?? [])],
    groupIds: [...(f.group_ids ?? [])],
    tagsAny: (f.tags_any ?? []).map((id) => ({ id, label: tagLabel(id) })),
    tagsAll: (f.tags_all ?? []).map((id) => ({ id, label: tagLabel(id) })),
    unsubscribed: f.unsubscribed === undefined || f.unsubscribed === null ? '' : f.unsubscribed ? 'yes' : 'no',
    reply: f.replied ? (f.replied.replied ? 'replied' : 'silent') : '',
    replyTaskId: f.replied?.task_id ?? null,
    lastChatAfter: local(f.last_chat_after),
    lastChatBefore: local(f.last_chat_before),
  }
}

/** How many conditions a filter holds (a segment list shows it; 0 is everyone in reach). */
export function conditionCount(f: AudienceFilter): number {
  let n = 0
  if (f.q) n++
  if (f.contact_type) n++
  for (const list of [f.instance_ids, f.account_ids, f.group_ids, f.tags_any, f.tags_all]) if (list?.length) n++
  if (f.unsubscribed !== undefined && f.unsubscribed !== null) n++
  if (f.replied) n++
  if (f.last_chat_after) n++
  if (f.last_chat_before) n++
  return n
}
