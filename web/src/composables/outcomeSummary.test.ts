import { describe, expect, it } from 'vitest'

import { replyRateLines, summaryQuery, totals } from './outcomeSummary'

const row = (label: string, day: string, sent: number, replied: number, opt_outs = 0) => ({
  key: 1,
  label,
  day,
  runs: 1,
  sent,
  replied,
  reply_rate: sent ? replied / sent : 0,
  opt_outs,
})

describe('outcome summary', () => {
  it('asks for the days before now in the given zone', () => {
    const q = summaryQuery('account', 7, new Date('2026-12-08T00:00:00Z'), 'Asia/Shanghai')
    expect(q).toEqual({ group_by: 'account', from: '2026-12-01T00:00:00.000Z', to: '2026-12-08T00:00:00.000Z', timezone: 'Asia/Shanghai' })
  })

  it('draws one reply-rate line per key with its days in order', () => {
    const lines = replyRateLines([row('新品', '2026-12-02', 200, 30), row('老客', '2026-12-01', 100, 5), row('新品', '2026-12-01', 100, 10)])
    expect(lines.map((l) => l.name)).toEqual(['老客', '新品'])
    expect(lines[1]!.data).toEqual([
      [Date.parse('2026-12-01T00:00:00Z'), 10],
      [Date.parse('2026-12-02T00:00:00Z'), 15],
    ])
  })

  it('adds up the rows', () => {
    expect(totals([row('a', '2026-12-01', 100, 10, 1), row('b', '2026-12-01', 300, 30, 2)])).toEqual({ sent: 400, replied: 40, optOuts: 3, rate: 0.1 })
    expect(totals([]).rate).toBe(0)
  })
})
