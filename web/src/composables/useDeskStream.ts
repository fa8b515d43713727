// The desk's live events over server-sent events (`/api/v1/desk/events`). The browser resumes
// a dropped stream by itself with `Last-Event-ID`; a stream the server closed (a restart, an
// expired session) is opened again from the last id seen, after refreshing the session once.
// Each event id is handed on once, whatever the reconnects.
import { onBeforeUnmount, ref } from 'vue'

import type { Schemas } from '../api/client'
import { CSRF_COOKIE, readCookie, refreshSession } from '../api/session'

type DeskEvent = Schemas['DeskEvent']

export const DESK_EVENT_KINDS = [
  'conversation.opened',
  'conversation.assigned',
  'conversation.accepted',
  'conversation.transferred',
  'conversation.requeued',
  'conversation.closed',
  'conversation.rated',
  'conversation.read',
  'conversation.member_joined',
  'conversation.member_left',
  'message.received',
  'message.sent',
  'message.recalled',
  'agent.status',
] as const satisfies readonly DeskEvent['kind'][]

// Every kind the API sends is listened for: a kind added there and not here fails to compile
// (an EventSource drops named events nobody listens for).
type Unheard = Exclude<DeskEvent['kind'], (typeof DESK_EVENT_KINDS)[number]>
export const everyKindHeard: [Unheard] extends [never] ? true : Unheard = true

/** Remembers the ids handed on, the newest few thousand. */
export class SeenIds {
  private ids = new Set<number>()
  last = 0

  constructor(private limit = 5000) {}

  /** Whether the id is new (and remembers it). */
  fresh(id: number): boolean {
    if (this.ids.has(id)) return false
    this.ids.add(id)
    this.last = Math.max(this.last, id)
    if (this.ids.size > this.limit) {
      const oldest = this.ids.values().next().value
      if (oldest !== undefined) this.ids.delete(oldest)
    }
    return true
  }
}

export function useDeskStream(onEvent: (event: DeskEvent) => void, onReset: () => void) {
  const live = ref(false)
  const seen = new SeenIds()
  let source: EventSource | null = null
  let retry: ReturnType<typeof setTimeout> | undefined
  let stopped = false

  function open() {
    source?.close()
    const url = seen.last > 0 ? `/api/v1/desk/events?after=${seen.last}` : '/api/v1/desk/events'
    const events = new EventSource(url)
    source = events
    events.addEventListener('open', () => (live.value = true))
    for (const kind of DESK_EVENT_KINDS) {
      events.addEventListener(kind, (message) => {
        const event = JSON.parse((message as MessageEvent<string>).data) as DeskEvent
        if (seen.fresh(event.id)) onEvent(event)
      })
    }
    events.addEventListener('reset', () => onReset())
    events.addEventListener('error', () => {
      live.value = false
      if (events.readyState !== EventSource.CLOSED || stopped) return
      // Closed by the server: refresh the session (it may have expired) and come back.
      clearTimeout(retry)
      retry = setTimeout(() => {
        void refreshSession(readCookie(CSRF_COOKIE)).finally(() => !stopped && open())
      }, 1000)
    })
  }

  function stop() {
    stopped = true
    clearTimeout(retry)
    source?.close()
    source = null
    live.value = false
  }

  onBeforeUnmount(stop)
  return { live, open, stop }
}
