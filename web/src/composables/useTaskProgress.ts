import { onBeforeUnmount, ref, shallowRef } from 'vue'

import type { Schemas } from '../api/client'
import { CSRF_COOKIE, readCookie, refreshSession } from '../api/session'

type Task = Schemas['TaskView']

/**
 * Live progress of one task over server-sent events (`/tasks/{id}/progress`, a `progress` event
 * with the task every second while it runs). The stream is closed as soon as the task is not
 * running; `follow()` opens it again (after resume or retry). A stream refused because the
 * session expired refreshes the session once and reconnects.
 */
export function useTaskProgress(taskId: () => number, onUpdate?: (task: Task) => void) {
  const task = shallowRef<Task | null>(null)
  const live = ref(false)
  let source: EventSource | null = null
  let refreshed = false

  function stop() {
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
      if (next.status !== 'running') stop()
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
