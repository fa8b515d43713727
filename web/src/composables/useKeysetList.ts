import { computed, ref, shallowRef } from 'vue'

import type { ApiError } from '../api/client'

export interface KeysetPage<T> {
  items: T[]
  next_cursor?: string | null
}

/**
 * A list paged with the API's keyset cursors: `load()` fetches the first page for the current
 * filters; `next()` and `previous()` walk pages by remembering the cursors that led to each, so
 * nothing ever counts or skips rows (fast at a million rows). An answer that arrives after the
 * filters changed again is dropped.
 */
export function useKeysetList<T>(fetchPage: (cursor: string | undefined) => Promise<KeysetPage<T>>) {
  const items = shallowRef<T[]>([])
  const loading = ref(false)
  const error = ref<ApiError | Error | null>(null)
  const nextCursor = ref<string | null>(null)
  /** Cursors of the pages after the first that led to the one shown. */
  const cursors = ref<string[]>([])
  let generation = 0

  async function show(cursor: string | undefined): Promise<boolean> {
    const mine = ++generation
    loading.value = true
    error.value = null
    try {
      const page = await fetchPage(cursor)
      if (mine !== generation) return false
      items.value = page.items
      nextCursor.value = page.next_cursor ?? null
      return true
    } catch (e) {
      if (mine === generation) error.value = e as Error
      return false
    } finally {
      if (mine === generation) loading.value = false
    }
  }

  async function load() {
    cursors.value = []
    await show(undefined)
  }

  async function next() {
    const cursor = nextCursor.value
    if (!cursor) return
    if (await show(cursor)) cursors.value = [...cursors.value, cursor]
  }

  async function previous() {
    if (!cursors.value.length) return
    const target = cursors.value.length > 1 ? cursors.value[cursors.value.length - 2] : undefined
    if (await show(target)) cursors.value = cursors.value.slice(0, -1)
  }

  return {
    items,
    loading,
    error,
    hasNext: computed(() => nextCursor.value !== null),
    hasPrevious: computed(() => cursors.value.length > 0),
    pageNumber: computed(() => cursors.value.length + 1),
    load,
    next,
    previous,
  }
}
