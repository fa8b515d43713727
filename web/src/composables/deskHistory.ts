// The conversation history's filters and how a finished conversation reads in the table.
// Agents see their own conversations (the API decides); supervisors every one.

import type { Schemas } from '../api/client'
import { fromLocalInput } from './userGrants'

type Conversation = Schemas['ConversationView']

export const CONVERSATION_STATES = ['queued', 'assigned', 'active', 'closed'] as const

export interface HistoryFilters {
  state: '' | (typeof CONVERSATION_STATES)[number]
  skillGroupId: number | null
  agentId: number | null
  visitorId: number | null
  /** Rated at most this many stars: the conversations a supervisor reviews. */
  ratingMax: number | null
  /** `datetime-local` values, local time: when the conversation opened. */
  from: string
  to: string
}

export function emptyHistoryFilters(): HistoryFilters {
  return { state: '', skillGroupId: null, agentId: null, visitorId: null, ratingMax: null, from: '', to: '' }
}

/** The API's query: blanks left out, times as UTC instants. */
export function historyQuery(filters: HistoryFilters) {
  return {
    state: filters.state || undefined,
    skill_group_id: filters.skillGroupId ?? undefined,
    agent_id: filters.agentId ?? undefined,
    visitor_id: filters.visitorId ?? undefined,
    rating_max: filters.ratingMax ?? undefined,
    opened_from: fromLocalInput(filters.from) ?? undefined,
    opened_to: fromLocalInput(filters.to) ?? undefined,
  }
}

/** A positive id from a route query value, or null. */
export function routeId(value: unknown): number | null {
  return typeof value === 'string' && /^[1-9]\d{0,15}$/.test(value) ? Number(value) : null
}

/** ★★★★☆ for 4; empty when the visitor did not rate. */
export function stars(rating: number | null | undefined): string {
  if (rating == null) return ''
  const n = Math.max(0, Math.min(5, Math.round(rating)))
  return '★'.repeat(n) + '☆'.repeat(5 - n)
}

/** How long the conversation lasted (opened to closed, or to now while open), as `1 h 5 min`, `4 min 10 s`. */
export function duration(c: Pick<Conversation, 'opened_at' | 'closed_at'>, now = new Date()): string {
  const end = c.closed_at ? new Date(c.closed_at) : now
  const secs = Math.max(0, Math.round((end.getTime() - new Date(c.opened_at).getTime()) / 1000))
  if (secs < 60) return `${secs} s`
  const mins = Math.floor(secs / 60)
  if (mins < 60) return `${mins} min ${secs % 60} s`
  return `${Math.floor(mins / 60)} h ${mins % 60} min`
}
