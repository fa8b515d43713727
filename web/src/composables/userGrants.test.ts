import { describe, expect, it } from 'vitest'

import { draftsFrom, errorsByRole, fromLocalInput, grantsOf, isExpired, toLocalInput, tomorrow } from './userGrants'

describe('local time inputs', () => {
  it('round-trips an instant through the datetime-local form', () => {
    const local = toLocalInput('2026-12-03T17:00:00Z')
    expect(local).toMatch(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}$/)
    expect(fromLocalInput(local)).toBe('2026-12-03T17:00:00.000Z')
  })
  it('leaves empty as permanent and passes garbage on for the API to refuse', () => {
    expect(toLocalInput(null)).toBe('')
    expect(toLocalInput('nonsense')).toBe('')
    expect(fromLocalInput('  ')).toBeNull()
    expect(fromLocalInput('next week')).toBe('next week')
  })
  it('offers the same minute tomorrow', () => {
    const now = new Date(2026, 11, 2, 9, 30, 45)
    expect(tomorrow(now)).toBe('2026-12-03T09:30')
  })
})

describe('drafts and grants', () => {
  const now = new Date('2026-12-02T12:00:00Z')
  const roles = [
    { role_id: 5, name: 'viewer', display_name: 'Viewer', expires_at: '2026-12-03T17:00:00Z' },
    { role_id: 3, name: 'operator', display_name: 'Operator', expires_at: null },
    { role_id: 7, name: 'old', display_name: 'Old', expires_at: '2026-12-01T00:00:00Z' },
  ]

  it('ticks live grants and leaves lapsed ones unticked', () => {
    const drafts = draftsFrom(roles, now)
    expect(drafts[5]).toEqual({ on: true, expires: toLocalInput('2026-12-03T17:00:00Z') })
    expect(drafts[3]).toEqual({ on: true, expires: '' })
    expect(drafts[7]).toEqual({ on: false, expires: '' })
    expect(isExpired('2026-12-01T00:00:00Z', now)).toBe(true)
    expect(isExpired(null, now)).toBe(false)
  })

  it('sends ticked roles in list order, with an expiry only when one is set', () => {
    const drafts = draftsFrom(roles, now)
    drafts[9] = { on: false, expires: '2027-01-01T00:00' }
    expect(grantsOf(drafts, [3, 5, 7, 9])).toEqual([
      { role_id: 3 },
      { role_id: 5, expires_at: '2026-12-03T17:00:00.000Z' },
    ])
  })

  it('puts each refused grant beside its role', () => {
    const grants = [{ role_id: 3 }, { role_id: 5, expires_at: '2020-01-01T00:00:00Z' }]
    expect(
      errorsByRole({ 'roles[1].expires_at': 'must be in the future', 'roles[0].role_id': 'no such role', password: 'too short' }, grants),
    ).toEqual({ 5: 'must be in the future', 3: 'no such role' })
  })
})
