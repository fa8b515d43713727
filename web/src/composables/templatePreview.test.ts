import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { effectScope, nextTick, ref } from 'vue'

import { ApiError, api } from '../api/client'
import type { TemplateDraft } from './templateForm'
import { type PreviewRequest, previewVariables, problemLines, renderOnServer, sampleOf, useTemplatePreview } from './templatePreview'

/** A render whose answers the test releases one by one, in any order. */
function manualRender() {
  const calls: { request: PreviewRequest; resolve: (content: string) => void; reject: (e: Error) => void }[] = []
  const render = (request: PreviewRequest) =>
    new Promise<{ content: string }>((resolve, reject) => {
      calls.push({ request, resolve: (content) => resolve({ content }), reject })
    })
  return { calls, render }
}

const flush = () => new Promise((r) => setTimeout(r, 0))

describe('useTemplatePreview', () => {
  beforeEach(() => vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] }))
  afterEach(() => vi.useRealTimers())

  it('waits for typing to pause, then renders once', async () => {
    const { calls, render } = manualRender()
    const coupon = ref('A')
    const scope = effectScope()
    const p = scope.run(() => useTemplatePreview(() => ({ templateId: 1, contactId: 7, sample: { coupon: coupon.value } }), { delay: 300, render }))!
    coupon.value = 'AB'
    await nextTick()
    coupon.value = 'ABC'
    await nextTick()
    vi.advanceTimersByTime(299)
    expect(calls).toHaveLength(0)
    vi.advanceTimersByTime(1)
    expect(calls).toHaveLength(1)
    expect(calls[0].request).toEqual({ templateId: 1, contactId: 7, sample: { coupon: 'ABC' } })
    expect(p.loading.value).toBe(true)
    calls[0].resolve('ABC!')
    vi.useRealTimers()
    await flush()
    expect(p.preview.value).toEqual({ content: 'ABC!' })
    expect(p.loading.value).toBe(false)
    scope.stop()
  })

  it('drops an answer overtaken by newer values', async () => {
    const { calls, render } = manualRender()
    const coupon = ref('old')
    const scope = effectScope()
    const p = scope.run(() => useTemplatePreview(() => ({ templateId: 1, sample: { coupon: coupon.value } }), { delay: 10, render }))!
    vi.advanceTimersByTime(10)
    coupon.value = 'new'
    await nextTick()
    vi.advanceTimersByTime(10)
    expect(calls).toHaveLength(2)
    calls[1].resolve('new')
    calls[0].resolve('old')
    vi.useRealTimers()
    await flush()
    expect(p.preview.value?.content).toBe('new')
    scope.stop()
  })

  it('shows the server refusal and clears it on the next good answer', async () => {
    const { calls, render } = manualRender()
    const value = ref(1)
    const scope = effectScope()
    const p = scope.run(() => useTemplatePreview(() => ({ templateId: 1, sample: { v: value.value } }), { delay: 0, render }))!
    vi.advanceTimersByTime(0)
    calls[0].reject(new ApiError(422, { errors: [{ field: 'content', message: 'undefined value' }] } as never))
    await vi.waitFor(() => expect(p.error.value).not.toBeNull())
    expect(problemLines(p.error.value!)).toEqual(['content: undefined value'])
    value.value = 2
    await nextTick()
    vi.advanceTimersByTime(0)
    calls[1].resolve('ok')
    await vi.waitFor(() => expect(p.preview.value?.content).toBe('ok'))
    expect(p.error.value).toBeNull()
    scope.stop()
  })

  it('follows a draft as it is typed, never showing an overtaken render', async () => {
    const { calls, render } = manualRender()
    const content = ref('{{ nickname }}')
    const draft = (): TemplateDraft => ({ message_type: 'text', content: content.value, payload: null, variables: [] })
    const scope = effectScope()
    const p = scope.run(() => useTemplatePreview(() => ({ draft: draft(), sample: {} }), { delay: 300, render }))!
    vi.advanceTimersByTime(300)
    expect(calls).toHaveLength(1)
    content.value = '{{ nickname }}您好'
    await nextTick()
    // The first answer arrives after the user typed on: it is dropped.
    calls[0].resolve('王伟')
    await Promise.resolve()
    await Promise.resolve()
    expect(p.preview.value).toBeNull()
    vi.advanceTimersByTime(300)
    expect(calls).toHaveLength(2)
    expect(calls[1].request).toEqual({ draft: { message_type: 'text', content: '{{ nickname }}您好', payload: null, variables: [] }, sample: {} })
    calls[1].resolve('王伟您好')
    vi.useRealTimers()
    await flush()
    expect(p.preview.value?.content).toBe('王伟您好')
    scope.stop()
  })

  it('renders nothing when there is nothing to render', async () => {
    const render = vi.fn()
    const scope = effectScope()
    const p = scope.run(() => useTemplatePreview(() => null, { delay: 0, render }))!
    vi.advanceTimersByTime(10)
    await Promise.resolve()
    expect(render).not.toHaveBeenCalled()
    expect(p.preview.value).toBeNull()
    scope.stop()
  })
})

describe('renderOnServer', () => {
  const answer = { data: { content: 'x' }, error: undefined, response: new Response('{}', { status: 200 }) }

  it('sends a draft to the draft preview, the contact when one is picked', async () => {
    const post = vi.spyOn(api, 'POST').mockResolvedValue(answer as never)
    const draft: TemplateDraft = { message_type: 'text', content: 'Hi', payload: null, variables: [{ name: 'a', type: 'string', required: false }] }
    await renderOnServer({ draft, contactId: 9, sample: { a: 1 } })
    expect(post).toHaveBeenCalledWith('/api/v1/templates/preview', { body: { ...draft, contact_id: 9, sample: { a: 1 } } })
    post.mockRestore()
  })

  it('sends a saved template to its own preview', async () => {
    const post = vi.spyOn(api, 'POST').mockResolvedValue(answer as never)
    await renderOnServer({ templateId: 4, sample: {} })
    expect(post).toHaveBeenCalledWith('/api/v1/templates/{id}/preview', { params: { path: { id: 4 } }, body: { sample: {} } })
    post.mockRestore()
  })
})

describe('previewVariables', () => {
  it('skips rows still unnamed and repeated names', () => {
    const names = previewVariables([
      { name: 'a', type: 'string' },
      { name: '', type: 'number' },
      { name: 'a', type: 'number' },
      { name: 'b', type: 'date' },
    ]).map((v) => `${v.name}:${v.type}`)
    expect(names).toEqual(['a:string', 'b:date'])
  })
})

describe('sampleOf', () => {
  it('leaves out what was not typed, keeps false and 0', () => {
    expect(sampleOf({ a: '', b: null, c: undefined, d: 0, e: false, f: 'x' })).toEqual({ d: 0, e: false, f: 'x' })
  })
})

describe('problemLines', () => {
  it('falls back to the detail', () => {
    expect(problemLines(new ApiError(404, { detail: 'no such contact' } as never))).toEqual(['no such contact'])
  })
})
