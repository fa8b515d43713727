import { beforeEach, describe, expect, it, vi } from 'vitest'

import { ApiError } from '../api/client'
import { notifyError } from '../util/notify'
import { useFormSubmit } from './useFormSubmit'

vi.mock('../util/notify', () => ({ notifyError: vi.fn() }))

const refused = () => new ApiError(422, { detail: 'invalid', errors: [{ field: 'name', message: 'too long' }] })

describe('useFormSubmit', () => {
  beforeEach(() => vi.mocked(notifyError).mockClear())

  it('answers the result and leaves no errors', async () => {
    const form = useFormSubmit()
    form.errors.value = { name: 'stale' }
    expect(await form.submit(async () => 42)).toBe(42)
    expect(form.errors.value).toEqual({})
    expect(notifyError).not.toHaveBeenCalled()
  })

  it('puts refused fields in errors without a message', async () => {
    const form = useFormSubmit()
    const result = await form.submit(async () => {
      throw refused()
    })
    expect(result).toBeUndefined()
    expect(form.errors.value).toEqual({ name: 'too long' })
    expect(notifyError).not.toHaveBeenCalled()
  })

  it('tells the user about any other failure', async () => {
    const form = useFormSubmit()
    const failures = [new ApiError(500, { detail: 'boom' }), new TypeError('offline')]
    for (const failure of failures) {
      const result = await form.submit(async () => {
        throw failure
      })
      expect(result).toBeUndefined()
      expect(form.errors.value).toEqual({})
      expect(notifyError).toHaveBeenLastCalledWith(failure)
    }
    expect(notifyError).toHaveBeenCalledTimes(2)
  })

  it('is busy while the work runs, and not after', async () => {
    const form = useFormSubmit()
    let release!: () => void
    const during: boolean[] = []
    const pending = form.submit(async () => {
      during.push(form.busy.value)
      await new Promise<void>((resolve) => (release = resolve))
    })
    expect(form.busy.value).toBe(true)
    release()
    await pending
    expect(during).toEqual([true])
    expect(form.busy.value).toBe(false)
    await form.submit(async () => {
      throw refused()
    })
    expect(form.busy.value).toBe(false)
  })
})
