import { ref, shallowRef, watch } from 'vue'

import { api, ok, type Schemas } from '../api/client'

/**
 * The live size of an audience as the operator edits it: `/tasks/estimate` asked again 400 ms
 * after the last change, an answer overtaken by a newer question dropped.
 */
export function useAudienceEstimate(question: () => Schemas['EstimateInput'], delayMs = 400) {
  const estimate = shallowRef<Schemas['AudienceEstimate'] | null>(null)
  const loading = ref(false)
  const error = ref<Error | null>(null)
  let generation = 0
  let timer: ReturnType<typeof setTimeout> | undefined

  async function ask() {
    const mine = ++generation
    loading.value = true
    try {
      const answer = await ok(api.POST('/api/v1/tasks/estimate', { body: question() }))
      if (mine === generation) {
        estimate.value = answer
        error.value = null
      }
    } catch (e) {
      if (mine === generation) error.value = e as Error
    } finally {
      if (mine === generation) loading.value = false
    }
  }

  watch(
    () => JSON.stringify(question()),
    () => {
      clearTimeout(timer)
      timer = setTimeout(ask, delayMs)
    },
    { immediate: true },
  )

  return { estimate, loading, error, refresh: ask }
}
