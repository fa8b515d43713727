// Submitting a form: the same few steps in every form, kept in one place so they stay alike.
import { ref } from 'vue'

import { ApiError } from '../api/client'
import { notifyError } from '../util/notify'

/**
 * A form's `busy` flag, its `errors` by field, and `submit`, which runs one request with both:
 * fields the API refused are shown beside their inputs (`errors`), any other failure as a message.
 * `submit` answers the work's result, or `undefined` when it failed.
 */
export function useFormSubmit() {
  const busy = ref(false)
  const errors = ref<Record<string, string>>({})

  async function submit<T>(work: () => Promise<T>): Promise<T | undefined> {
    busy.value = true
    errors.value = {}
    try {
      return await work()
    } catch (error) {
      if (error instanceof ApiError && Object.keys(error.fieldErrors).length) errors.value = error.fieldErrors
      else notifyError(error)
      return undefined
    } finally {
      busy.value = false
    }
  }

  return { busy, errors, submit }
}
