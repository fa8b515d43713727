import { describe, expect, it } from 'vitest'

import type { Schemas } from '../api/client'
import { RANGES, rangeQuery, summarize, tableRows, toLine } from './chartSeries'

const point = (time: string, avg: number, sum: number): Schemas['SeriesPoint'] => ({ time, avg, sum, min: avg, max: avg, samples: 1 })

describe('rangeQuery', () => {
  it('ends now and spans the range', () => {
    const now = new Date('2026-03-01T12:00:00Z')
    expect(rangeQuery('1h', now)).toEqual({ from: '2026-03-01T11:00:00.000Z', to: '2026-03-01T12:00:00.000Z', step: 60 })
    expect(rangeQuery('7d', now).from).toBe('2026-02-22T12:00:00.000Z')
  })

  it('keeps every range under the API limit of 2000 points', () => {
    for (const { seconds, step } of Object.values(RANGES)) expect(seconds / step).toBeLessThanOrEqual(2000)
  })
})

describe('lines', () => {
  const series: Schemas['Series'] = {
    metric: 'heartbeat_latency_ms',
    step: 60,
    from: '2026-03-01T11:00:00Z',
    to: '2026-03-01T12:00:00Z',
    points: [point('2026-03-01T11:01:00Z', 12.345, 24.69), point('2026-03-01T11:02:00Z', 8, 8)],
  }

  it('turns points into rounded [time, value] pairs', () => {
    expect(toLine(series, 'avg')).toEqual([
      [Date.parse('2026-03-01T11:01:00Z'), 12.3],
      [Date.parse('2026-03-01T11:02:00Z'), 8],
    ])
  })

  it('summarizes a line, or nothing for an empty one', () => {
    expect(summarize(toLine(series, 'sum'))).toEqual({
      points: 2,
      min: 8,
      max: 24.7,
      last: 8,
      lastTime: Date.parse('2026-03-01T11:02:00Z'),
      total: 32.7,
    })
    expect(summarize([])).toBeNull()
  })

  it('lays lines side by side, newest first, with gaps as null', () => {
    expect(tableRows([[[1, 5], [2, 6]], [[2, 1]]])).toEqual([
      { time: 2, values: [6, 1] },
      { time: 1, values: [5, null] },
    ])
  })
})
