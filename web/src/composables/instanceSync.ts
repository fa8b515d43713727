// A contact and group sync of an instance, followed until it finishes: the API queues it (or
// answers with the run already queued) and we poll its latest run for the counts so far.
import { getCurrentScope, onScopeDispose, ref } from 'vue'

import { api, ok, type Schemas } from '../api/client'
import { notifyError } from '../util/notify'

type Run = Schemas['SyncRunView']

export const finished = (run: Run) => run.status === 'succeeded' || run.status === 'failed'

/**
 * Calls `onUpdate` with each state of the run `start` returns, polling `latest` every `everyMs`
 * until it finishes or `stopped()` says the page is gone. Returns the last state seen.
 */
export async function followRun(
  start: () => Promise<Run>,
  latest: () => Promise<Run | undefined>,
  onUpdate: (run: Run) => void,
  stopped: () => boolean = () => false,
  everyMs = 1000,
): Promise<Run> {
  let run = await start()
  onUpdate(run)
  while (!finished(run) && !stopped()) {
    await new Promise((resolve) => setTimeout(resolve, everyMs))
    run = (await latest()) ?? run
    onUpdate(run)
  }
  return run
}

/** Sync runs by instance id, for a list or a detail page. */
export function useInstanceSync() {
  const runs = ref<Record<number, Run>>({})
  let stopped = false
  if (getCurrentScope()) onScopeDispose(() => (stopped = true))

  const latest = async (id: number) =>
    (await ok(api.GET('/api/v1/instances/{id}/sync-runs', { params: { path: { id }, query: { limit: 1 } } }))).items[0]
  const show = (id: number) => (run: Run) => (runs.value = { ...runs.value, [id]: run })

  /** Shows the instance's last run, if any (a detail page opened mid-sync keeps following it). */
  async function load(id: number) {
    try {
      const run = await latest(id)
      if (!run) return
      show(id)(run)
      if (!finished(run)) await followRun(async () => run, () => latest(id), show(id), () => stopped)
    } catch (error) {
      notifyError(error)
    }
  }

  /** Queues a sync and follows it; resolves when it has finished (or failed to start). */
  async function sync(id: number) {
    try {
      await followRun(
        () => ok(api.POST('/api/v1/instances/{id}/sync', { params: { path: { id } } })),
        () => latest(id),
        show(id),
        () => stopped,
      )
    } catch (error) {
      notifyError(error)
    }
  }

  return { runs, load, sync }
}
