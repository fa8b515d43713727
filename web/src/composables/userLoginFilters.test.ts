import { describe, expect, it } from 'vitest'

import { emptyLoginFilters, loginLogQuery, parseUserId, pickUser } from './userLoginFilters'

describe('sign-in history filters', () => {
  it('finds the user named exactly, not one whose name merely contains it', () => {
    const users = [
      { id: 3, username: 'bob2' },
      { id: 2, username: 'Bob' },
    ]
    expect(pickUser(users, ' bob ')).toBe(2)
    expect(pickUser(users, 'bo')).toBeNull()
  })

  it('reads a typed user id', () => {
    expect(parseUserId(' 42 ')).toBe(42)
    expect(parseUserId('0')).toBeNull()
    expect(parseUserId('bob')).toBeNull()
  })

  it('sends only what is set, times in UTC', () => {
    expect(loginLogQuery({ ...emptyLoginFilters(), ip: ' 10.0.0.1 ', result: 'failure' }, 7)).toEqual({
      user_id: 7,
      ip: '10.0.0.1',
      result: 'failure',
      from: undefined,
      to: undefined,
    })
    expect(loginLogQuery({ ...emptyLoginFilters(), to: '2026-12-02T08:00' }, null).to).toBe(new Date('2026-12-02T08:00').toISOString())
  })
})
