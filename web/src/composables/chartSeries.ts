// Time ranges for the monitoring charts and the shaping of `GET /api/v1/monitoring/series`
// answers into chart lines and the text summary that stands in for a chart (a11y).
import type { Schemas } from '../api/client'

export type RangeKey = '1h' | '24h' | '7d'

/** Each range with a step that keeps it well under the API's 2000 points. */
export const RANGES: Record<RangeKey, { seconds: number; step: number }> = {
  '1h': { seconds: 3600, step: 60 },
  '24h': { seconds: 86_400, step: 300 },
  '7d': { seconds: 604_800, step: 3600 },
}

/** `from`, `to` and `step` query parameters for a range ending now. */
export function rangeQuery(range: RangeKey, now: Date = new Date()) {
  const { seconds, step } = RANGES[range]
  return { from: new Date(now.getTime() - seconds * 1000).toISOString(), to: now.toISOString(), step }
}

/** [epoch ms, value] pairs; `sum` for counters (`dispatch_sends_*`), `avg`/`max` for gauges. */
export type Line = [number, number][]

export function toLine(series: Schemas['Series'], field: 'avg' | 'sum' | 'max'): Line {
  return series.points.map((p) => [Date.parse(p.time), Math.round(p[field] * 10) / 10])
}

export interface LineSummary {
  points: number
  min: number
  max: number
  last: number
  lastTime: number
  total: number
}

/** What a line shows, in figures: for the chart's text alternative. `null` when it is empty. */
export function summarize(line: Line): LineSummary | null {
  if (!line.length) return null
  const values = line.map(([, v]) => v)
  const [lastTime, last] = line[line.length - 1]!
  return {
    points: line.length,
    min: Math.min(...values),
    max: Math.max(...values),
    last,
    lastTime,
    total: Math.round(values.reduce((a, b) => a + b, 0) * 10) / 10,
  }
}

/** Rows of a table holding several lines side by side, newest first. */
export function tableRows(lines: Line[]): { time: number; values: (number | null)[] }[] {
  const times = [...new Set(lines.flatMap((line) => line.map(([t]) => t)))].sort((a, b) => b - a)
  const lookups = lines.map((line) => new Map(line))
  return times.map((time) => ({ time, values: lookups.map((m) => m.get(time) ?? null) }))
}
