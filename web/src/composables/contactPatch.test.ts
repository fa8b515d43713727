import { describe, expect, it } from 'vitest'

import type { Schemas } from '../api/client'
import { contactFormOf, contactPatchOf } from './contactPatch'

const contact: Schemas['ContactView'] = {
  id: 9,
  instance_id: 1,
  account_id: 2,
  wxid: 'wm_1',
  contact_type: 'external',
  friend_status: 'normal',
  is_star: false,
  is_top: false,
  is_blocked: false,
  chat_count: 0,
  remark: '老王',
  custom_fields: { level: 'gold', score: 3 },
  tags: [
    { id: 1, name: 'VIP', group_name: '客户等级' },
    { id: 5, name: '老客户', group_name: '' },
  ],
  created_at: '2025-01-01T00:00:00Z',
  updated_at: '2025-01-01T00:00:00Z',
}
const synced = new Set([1])

describe('the contact form', () => {
  it('holds the local tags only', () => {
    expect(contactFormOf(contact, synced).tags).toEqual([{ id: 5, label: '老客户' }])
  })

  it('sends nothing when nothing changed', () => {
    expect(contactPatchOf(contact, contactFormOf(contact, synced), synced, true)).toEqual({ patch: {}, errors: {} })
  })

  it('sends only what changed', () => {
    const form = contactFormOf(contact, synced)
    form.remark = '  王总 '
    form.tags = [...form.tags, { id: 8, label: '新' }]
    form.fields[0].value = 'platinum'
    form.isBlocked = true
    expect(contactPatchOf(contact, form, synced, true).patch).toEqual({
      remark: '王总',
      tag_ids: [5, 8],
      custom_fields: { level: 'platinum', score: 3 },
      is_blocked: true,
    })
  })

  it('clears a remark and the fields with null', () => {
    const form = contactFormOf(contact, synced)
    form.remark = ' '
    form.fields = []
    expect(contactPatchOf(contact, form, synced, true).patch).toEqual({ remark: null, custom_fields: null })
  })

  it('leaves tags alone when they cannot be told apart, and reports bad fields', () => {
    const form = contactFormOf(contact, synced)
    form.tags = []
    form.fields.push({ key: '', value: 'x', json: false })
    expect(contactPatchOf(contact, form, synced, false)).toEqual({ patch: {}, errors: { 2: 'keyMissing' } })
  })
})
