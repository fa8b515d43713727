import { describe, expect, it } from 'vitest'

import { duration, emptyHistoryFilters, historyQuery, routeId, stars } from './deskHistory'

describe('desk history', () => {
  it('sends only the filters set, times as UTC instants', () => {
    expect(historyQuery(emptyHistoryFilters())).toEqual({
      state: undefined, skill_group_id: undefined, agent_id: undefined, visitor_id: undefined,
      rating_max: undefined, opened_from: undefined, opened_to: undefined,
    })
    const query = historyQuery({ ...emptyHistoryFilters(), state: 'closed', agentId: 3, ratingMax: 2, from: '2026-12-01T08:00' })
    expect(query).toMatchObject({ state: 'closed', agent_id: 3, rating_max: 2 })
    expect(query.opened_from).toBe(new Date('2026-12-01T08:00').toISOString())
  })

  it('takes an id from the route only when it is one', () => {
    expect(routeId('42')).toBe(42)
    for (const bad of ['0', '-1', '1.5', 'x', undefined, ['1']]) expect(routeId(bad)).toBeNull()
  })

  it('shows a rating as stars and nothing when unrated', () => {
    expect(stars(4)).toBe('★★★★☆')
    expect(stars(1)).toBe('★☆☆☆☆')
    expect(stars(null)).toBe('')
  })

  it('says how long a conversation lasted', () => {
    const opened_at = '2026-12-01T08:00:00Z'
    expect(duration({ opened_at, closed_at: '2026-12-01T08:00:42Z' })).toBe('42 s')
    expect(duration({ opened_at, closed_at: '2026-12-01T08:04:10Z' })).toBe('4 min 10 s')
    expect(duration({ opened_at, closed_at: '2026-12-01T09:05:00Z' })).toBe('1 h 5 min')
    expect(duration({ opened_at, closed_at: null }, new Date('2026-12-01T08:00:05Z'))).toBe('5 s')
  })
})
