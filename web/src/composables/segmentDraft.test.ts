import { describe, expect, it } from 'vitest'

import { conditionCount, emptySegmentFilter, filterOf, stateOf } from './segmentDraft'

describe('segment filters', () => {
  it('leave out what is not set, so an empty form selects everyone in reach', () => {
    expect(filterOf(emptySegmentFilter())).toEqual({})
    expect(conditionCount({})).toBe(0)
  })

  it('map every condition to the API and back', () => {
    const state = {
      ...emptySegmentFilter(),
      q: '  张  ',
      contactType: 'external' as const,
      instanceIds: [3],
      groupIds: [7, 8],
      tagsAny: [{ id: 1, label: 'VIP' }],
      tagsAll: [{ id: 2, label: '上海' }],
      unsubscribed: 'no' as const,
      reply: 'silent' as const,
      replyTaskId: 42,
      lastChatAfter: '2026-12-01T08:30',
    }
    const filter = filterOf(state)
    expect(filter).toMatchObject({
      q: '张',
      contact_type: 'external',
      instance_ids: [3],
      group_ids: [7, 8],
      tags_any: [1],
      tags_all: [2],
      unsubscribed: false,
      replied: { task_id: 42, replied: false },
    })
    expect(new Date(filter.last_chat_after ?? '').getTime()).toBe(new Date('2026-12-01T08:30').getTime())
    expect(filter.last_chat_before).toBeUndefined()
    expect(conditionCount(filter)).toBe(9)
    const back = stateOf(filter, (id) => (id === 1 ? 'VIP' : '上海'))
    expect(back).toEqual({ ...state, q: '张' })
  })

  it('need a task before a reply condition counts', () => {
    expect(filterOf({ ...emptySegmentFilter(), reply: 'replied' })).toEqual({})
  })
})
