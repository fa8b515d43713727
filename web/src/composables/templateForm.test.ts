import { describe, expect, it } from 'vitest'

import type { Schemas } from '../api/client'
import { coerceValue, draftOf, emptyForm, formOf, inputOf, isBlankDraft, newRow, patchOf, tagsOf } from './templateForm'

const view: Schemas['TemplateView'] = {
  id: 3,
  uuid: '00000000-0000-0000-0000-000000000003',
  name: '双十一',
  category: 'marketing',
  message_type: 'link',
  content: '{{ nickname }}',
  payload: { title: '{{ shop }}专享', url: 'https://x.cn', extra: { n: 1 } },
  variables: [
    { name: 'shop', type: 'string', required: true },
    { name: 'discount', type: 'number', default: 0.9, description: '折扣' },
  ],
  use_count: 0,
  is_public: true,
  status: 'active',
  tags: ['促销', '会员'],
  created_by: 1,
  created_at: '2026-01-01T00:00:00Z',
  updated_at: '2026-01-01T00:00:00Z',
}

describe('templateForm', () => {
  it('round-trips a saved template, keeping payload keys it has no field for', () => {
    const form = formOf(view)
    expect(form.payload).toEqual({ title: '{{ shop }}专享', url: 'https://x.cn' })
    expect(form.tags).toBe('促销, 会员')
    const input = inputOf(form)
    expect(input).toEqual({
      name: '双十一',
      category: 'marketing',
      message_type: 'link',
      content: '{{ nickname }}',
      payload: { extra: { n: 1 }, title: '{{ shop }}专享', url: 'https://x.cn' },
      variables: [
        { name: 'shop', type: 'string', required: true },
        { name: 'discount', type: 'number', required: false, default: 0.9, description: '折扣' },
      ],
      is_public: true,
      tags: ['促销', '会员'],
    })
    expect(patchOf(form)).not.toHaveProperty('message_type')
  })

  it('sends no payload for text, no blank category and no empty default', () => {
    const form = emptyForm()
    form.name = ' 问候 '
    form.content = 'Hi'
    form.payload = { title: 'stale' }
    const row = newRow()
    row.name = ' coupon '
    row.default = ''
    form.variables.push(row)
    const input = inputOf(form)
    expect(input.payload).toBeNull()
    expect(input.category).toBeNull()
    expect(input.name).toBe('问候')
    expect(input.variables).toEqual([{ name: 'coupon', type: 'string', required: false }])
  })

  it('keeps a default across a type change only if it fits', () => {
    expect(coerceValue('number', 5)).toBe(5)
    expect(coerceValue('number', '5')).toBeNull()
    expect(coerceValue('date', '2026-12-12')).toBe('2026-12-12')
    expect(coerceValue('date', 'tomorrow')).toBeNull()
    expect(coerceValue('boolean', false)).toBe(false)
    expect(coerceValue('string', 3)).toBeNull()
  })

  it('splits tags on either comma', () => {
    expect(tagsOf('a, b，c,,a ')).toEqual(['a', 'b', 'c'])
  })

  it('previews what a save would send, whatever the name', () => {
    const form = formOf(view)
    const draft = draftOf(form)
    expect(draft).toEqual({
      message_type: 'link',
      content: '{{ nickname }}',
      payload: { extra: { n: 1 }, title: '{{ shop }}专享', url: 'https://x.cn' },
      variables: inputOf(form).variables,
    })
    form.name = 'renamed'
    expect(draftOf(form)).toEqual(draft)
    form.variables[0].default = 'x'
    expect(draftOf(form).variables?.[0]).toMatchObject({ name: 'shop', default: 'x' })
  })

  it('has nothing to preview until text or an attachment field is typed', () => {
    const form = emptyForm()
    expect(isBlankDraft(draftOf(form))).toBe(true)
    form.content = '  '
    expect(isBlankDraft(draftOf(form))).toBe(true)
    form.messageType = 'image'
    form.payload = { media_id: 'm1' }
    expect(isBlankDraft(draftOf(form))).toBe(false)
    form.messageType = 'text'
    form.content = '你好'
    expect(isBlankDraft(draftOf(form))).toBe(false)
  })
})
