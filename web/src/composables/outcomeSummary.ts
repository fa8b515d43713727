// `GET /api/v1/outcomes` (results per template or account per day) shaped for the outcomes page:
// the query for a range ending now, and one reply-rate line per template or account.
import type { Schemas } from '../api/client'
import type { Line } from './chartSeries'

export type SummaryRange = 7 | 30 | 90

/** The query for the last `days` days, counted in the browser's time zone. */
export function summaryQuery(
  groupBy: Schemas['SummaryGroup'],
  days: SummaryRange,
  now: Date = new Date(),
  timezone = Intl.DateTimeFormat().resolvedOptions().timeZone,
) {
  return { group_by: groupBy, from: new Date(now.getTime() - days * 86_400_000).toISOString(), to: now.toISOString(), timezone }
}

/** The midnight (UTC) a `YYYY-MM-DD` day starts at, as a chart's time axis wants. */
function dayStart(day: string): number {
  return Date.parse(`${day}T00:00:00Z`)
}

/** One line per key (its label), reply rate in percent by day, days in order. */
export function replyRateLines(rows: Schemas['SummaryRow'][]): { name: string; data: Line }[] {
  const lines = new Map<string, Line>()
  for (const row of [...rows].sort((a, b) => a.day.localeCompare(b.day))) {
    const name = row.label
    const line = lines.get(name) ?? []
    line.push([dayStart(row.day), Math.round(row.reply_rate * 1000) / 10])
    lines.set(name, line)
  }
  return [...lines.entries()].map(([name, data]) => ({ name, data }))
}

/** Totals over the rows shown. */
export function totals(rows: Schemas['SummaryRow'][]) {
  const sent = rows.reduce((n, r) => n + r.sent, 0)
  const replied = rows.reduce((n, r) => n + r.replied, 0)
  const optOuts = rows.reduce((n, r) => n + r.opt_outs, 0)
  return { sent, replied, optOuts, rate: sent ? replied / sent : 0 }
}
