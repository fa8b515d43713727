import { describe, expect, it } from 'vitest'

import { contactExportUrl, contactQuery, emptyContactFilters } from './contactFilters'

describe('contactQuery', () => {
  it('leaves unset filters out', () => {
    expect(contactQuery(emptyContactFilters())).toEqual({})
    expect(contactExportUrl(emptyContactFilters())).toBe('/api/v1/contacts/export')
  })

  it('maps every filter to its query parameter', () => {
    const filters = {
      ...emptyContactFilters(),
      q: '  王 ',
      contactType: 'external' as const,
      friendStatus: 'normal' as const,
      accountId: 4,
      instanceId: 2,
      tagsAny: [
        { id: 7, label: 'VIP' },
        { id: 9, label: '金牌' },
      ],
      tagsAll: [{ id: 3, label: '促销' }],
      isStar: 'yes' as const,
      isBlocked: 'no' as const,
      unsubscribed: 'yes' as const,
      updatedSince: '2025-01-02T03:04',
    }
    expect(contactQuery(filters)).toEqual({
      q: '王',
      contact_type: 'external',
      friend_status: 'normal',
      account_id: 4,
      instance_id: 2,
      tags_any: '7,9',
      tags_all: '3',
      is_star: true,
      is_blocked: false,
      unsubscribed: true,
      updated_since: new Date('2025-01-02T03:04').toISOString(),
    })
  })

  it('makes the export link from the same filters', () => {
    const url = contactExportUrl({ ...emptyContactFilters(), q: 'a b', tagsAll: [{ id: 1, label: 'x' }, { id: 2, label: 'y' }], isStar: 'no' })
    const params = new URL(url, 'http://x').searchParams
    expect(url.startsWith('/api/v1/contacts/export?')).toBe(true)
    expect(Object.fromEntries(params)).toEqual({ q: 'a b', tags_all: '1,2', is_star: 'false' })
  })

  it('exports the opt-out list with the same filter', () => {
    const url = contactExportUrl({ ...emptyContactFilters(), unsubscribed: 'yes' })
    expect(url).toBe('/api/v1/contacts/export?unsubscribed=true')
    expect(contactQuery({ ...emptyContactFilters(), unsubscribed: 'no' })).toEqual({ unsubscribed: false })
  })

  it('ignores an unreadable date', () => {
    expect(contactQuery({ ...emptyContactFilters(), updatedSince: 'soon' })).toEqual({})
  })
})
