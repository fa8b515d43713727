import { describe, expect, it } from 'vitest'

import type { Schemas } from '../api/client'
import { exactTag, splitTags, tagChoiceOf, tagText, withChoice } from './contactTags'

const tag = (id: number, name: string, group_name = '', instance_id: number | null = null): Schemas['TagView'] => ({
  id,
  name,
  group_name,
  instance_id,
  contact_count: 0,
  created_at: '2025-01-01T00:00:00Z',
})

describe('tags', () => {
  it('reads as group/name', () => {
    expect(tagText({ group_name: '客户等级', name: 'VIP' })).toBe('客户等级/VIP')
    expect(tagText({ group_name: '', name: '老客户' })).toBe('老客户')
  })

  it('names the instance of a synced tag', () => {
    const names = (id: number) => (id === 2 ? '华东' : undefined)
    expect(tagChoiceOf(tag(5, 'VIP', '客户等级', 2), names)).toEqual({ id: 5, label: '客户等级/VIP · 华东' })
    expect(tagChoiceOf(tag(6, 'VIP', '客户等级', 3), names)).toEqual({ id: 6, label: '客户等级/VIP · #3' })
    expect(tagChoiceOf(tag(7, '老客户'), names)).toEqual({ id: 7, label: '老客户' })
  })

  it('finds the tag typed exactly, by name or group/name', () => {
    const tags = [tag(1, 'VIP客户'), tag(2, 'vip', '等级')]
    expect(exactTag(tags, ' VIP ')?.id).toBe(2)
    expect(exactTag(tags, '等级/VIP')?.id).toBe(2)
    expect(exactTag(tags, 'VIP客')).toBeUndefined()
    expect(exactTag(tags, '  ')).toBeUndefined()
  })

  it('splits a contact’s tags into synced and local', () => {
    const refs = [
      { id: 1, name: 'a', group_name: '' },
      { id: 2, name: 'b', group_name: '' },
    ]
    expect(splitTags(refs, new Set([2]))).toEqual({ synced: [refs[1]], local: [refs[0]] })
  })

  it('adds a choice once', () => {
    const list = [{ id: 1, label: 'a' }]
    expect(withChoice(list, { id: 1, label: 'a' })).toBe(list)
    expect(withChoice(list, { id: 2, label: 'b' })).toEqual([...list, { id: 2, label: 'b' }])
  })
})
