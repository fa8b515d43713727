import { describe, expect, it } from 'vitest'

import { auditAddress, auditFiltersFrom, auditQuery, emptyAuditFilters } from './auditFilters'

describe('audit filters', () => {
  it('reads known filters from the address and drops the rest', () => {
    const filters = auditFiltersFrom({ resource_type: 'user', resource_id: '7', result: 'failure', operation_type: 'bogus', page: '3', username: ['a', 'b'] })
    expect(filters).toEqual({ ...emptyAuditFilters(), resource_type: 'user', resource_id: '7', result: 'FAILURE' })
  })

  it('writes back only the filters that are set', () => {
    expect(auditAddress({ ...emptyAuditFilters(), operation: ' user.roles.set ', result: 'SUCCESS' })).toEqual({ operation: 'user.roles.set', result: 'SUCCESS' })
  })

  it('asks the API for set filters only, with times in UTC', () => {
    const query = auditQuery({ ...emptyAuditFilters(), username: 'admin', from: '2026-12-02T08:00' })
    expect(query.username).toBe('admin')
    expect(query.operation).toBeUndefined()
    expect(query.result).toBeUndefined()
    expect(query.from).toBe(new Date('2026-12-02T08:00').toISOString())
    expect(query.to).toBeUndefined()
  })
})
