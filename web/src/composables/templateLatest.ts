// The answer to the latest of a stream of requests: a request waits until its inputs stop
// changing for `delay` ms, and an answer overtaken by a newer request is dropped, so what is
// shown always matches what is typed now (live previews, search-as-you-type).
import { onScopeDispose, ref, shallowRef, watch } from 'vue'

import type { ApiError } from '../api/client'

export function useLatest<Req, Res>(request: () => Req | null, fetch: (request: Req) => Promise<Res>, delay = 300) {
  const data = shallowRef<Res | null>(null)
  const error = shallowRef<ApiError | Error | null>(null)
  const loading = ref(false)
  let generation = 0
  let timer: ReturnType<typeof setTimeout> | undefined

  async function run() {
    const current = request()
    const mine = ++generation
    if (current === null) {
      data.value = null
      error.value = null
      loading.value = false
      return
    }
    loading.value = true
    try {
      const answer = await fetch(current)
      if (mine !== generation) return
      data.value = answer
      error.value = null
    } catch (e) {
      if (mine !== generation) return
      data.value = null
      error.value = e as Error
    } finally {
      if (mine === generation) loading.value = false
    }
  }

  /** Asks again now, without waiting. */
  function refresh() {
    clearTimeout(timer)
    return run()
  }

  watch(
    () => JSON.stringify(request()),
    () => {
      clearTimeout(timer)
      // Whatever is in flight is stale from this moment.
      generation++
      timer = setTimeout(run, delay)
    },
    { immediate: true },
  )
  onScopeDispose(() => {
    clearTimeout(timer)
    generation++
  })

  return { data, error, loading, refresh }
}
