import { describe, expect, it } from 'vitest'

import type { Schemas } from '../api/client'
import { emptyLogFilters, filterErrors, instantOf, logFacts, logQueryOf, logRows } from './logQuery'

describe('logQueryOf', () => {
  it('leaves blanks out', () => {
    expect(logQueryOf(emptyLogFilters())).toEqual({
      kind: undefined,
      level: undefined,
      service: undefined,
      q: undefined,
      instance_id: undefined,
      user_id: undefined,
      trace_id: undefined,
      from: undefined,
      to: undefined,
      before: undefined,
      limit: 50,
    })
  })

  it('sends every filter, the times as instants, and the cursor', () => {
    const filters = {
      kind: 'audit' as const,
      level: 'WARN',
      service: 'api',
      q: ' 告警 ',
      instanceId: ' 7 ',
      userId: '12',
      traceId: ' req-1 ',
      from: '2025-03-01T08:00',
      to: '2025-03-01T09:30',
    }
    const query = logQueryOf(filters, '2025-03-01T01:00:00Z', 20)
    expect(query).toMatchObject({ kind: 'audit', level: 'WARN', service: 'api', q: '告警', instance_id: 7, user_id: 12, trace_id: 'req-1' })
    expect(query.from).toBe(new Date('2025-03-01T08:00').toISOString())
    expect(query.to).toBe(new Date('2025-03-01T09:30').toISOString())
    expect(query).toMatchObject({ before: '2025-03-01T01:00:00Z', limit: 20 })
  })
})

describe('instantOf and filterErrors', () => {
  it('reads local wall-clock time and refuses what is not an id', () => {
    expect(instantOf('')).toBeUndefined()
    expect(instantOf('nonsense')).toBeUndefined()
    expect(filterErrors({ ...emptyLogFilters(), instanceId: 'abc', userId: '0' })).toEqual({ instance_id: true, user_id: true })
    expect(filterErrors({ ...emptyLogFilters(), instanceId: '3', userId: '' })).toEqual({})
  })
})

describe('logRows and logFacts', () => {
  const doc: Schemas['LogDoc'] = {
    id: '00000000-0000-0000-0000-000000000000',
    '@timestamp': '2025-03-01T01:00:00Z',
    kind: 'access',
    level: 'INFO',
    service: 'api',
    message: 'GET /api/v1/alerts 200',
    method: 'GET',
    path: '/api/v1/alerts',
    status: 200,
    duration_ms: 0,
    trace_id: null,
  }

  it('keys lines apart even when they share the nil id', () => {
    const rows = logRows([doc, doc])
    expect(new Set(rows.map((r) => r.key)).size).toBe(2)
  })

  it('lists the fields that are there, zero included', () => {
    expect(logFacts(doc)).toEqual([
      ['kind', 'access'],
      ['level', 'INFO'],
      ['service', 'api'],
      ['method', 'GET'],
      ['path', '/api/v1/alerts'],
      ['status', '200'],
      ['duration_ms', '0'],
    ])
  })
})
