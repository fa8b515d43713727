import { onBeforeUnmount, ref, shallowRef } from 'vue'

import type { Schemas } from '../api/client'
import { CSRF_COOKIE, readCookie, refreshSession } from '../api/session'

type Task = Schemas['TaskView']

/**
 * Live progress of one task over server-sent events (`/tasks/{id}/progress`, a `progress` event
 * with the task every second while it runs or is paused). The stream is closed once the task
 * settles; a task scheduled to start within a minute is followed again every 2 s until it does;
 * `follow()` opens it again (after resume or retry). A stream refused because the session
 * expired refreshes the session once and reconnects.
 */
export function useTaskProgress(taskId: () => number, onUpdate?: (task: Task) => void) {
  const task = shallowRef<Task | null>(null)
  const live = ref(false)
  let source: EventSource | null = null
  let refreshed = false
  let again: ReturnType<typeof setTimeout> | undefined

  function stop() {
    clearTimeout(again)
    source?.close()
    source = null
    live.value = false
  }

  function follow() {
    stop()
    const events = new EventSource(`/api/v1/tasks/${taskId()}/progress`)
    source = events
    events.addEventListener('open', () => {
      live.value = true
      refreshed = false
    })
    events.addEventListener('progress', (event) => {
      const next = JSON.parse((event as MessageEvent<string>).data) as Task
      task.value = next
      onUpdate?.(next)
      if (next.status === 'running' || next.status === 'paused') return
      stop()
      if (next.status === 'scheduled' && startsSoon(next)) again = setTimeout(follow, 2000)
    })
    events.addEventListener('error', () => {
      if (events.readyState !== EventSource.CLOSED) return
      stop()
      if (refreshed) return
      refreshed = true
      void refreshSession(readCookie(CSRF_COOKIE)).then((ok) => ok && follow())
    })
  }

  onBeforeUnmount(stop)
  return { task, live, follow, stop }
}

/** Whether a scheduled task is due within the next minute (or overdue: the scheduler is on it). */
export function startsSoon(task: Pick<Task, 'scheduled_time' | 'next_fire_at'>, now = Date.now()): boolean {
  const at = task.next_fire_at ?? task.scheduled_time
  return !at || new Date(at).getTime() <= now + 60_000
}
