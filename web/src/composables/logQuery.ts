// The log search form's filters and their mapping to `GET /api/v1/logs`.
import type { Schemas } from '../api/client'

export type LogKind = Schemas['LogKind']
export type LogQuery = NonNullable<NonNullable<import('../api/schema').paths['/api/v1/logs']['get']['parameters']['query']>>

export const LOG_KINDS: LogKind[] = ['system', 'error', 'access', 'audit']
export const LOG_LEVELS = ['ERROR', 'WARN', 'INFO', 'DEBUG']
export const LOG_SERVICES = ['api', 'worker', 'serve']

export interface LogFilters {
  kind: LogKind | ''
  level: string
  service: string
  q: string
  instanceId: string
  userId: string
  traceId: string
  /** `datetime-local` values: wall-clock time in the browser's time zone. */
  from: string
  to: string
}

export function emptyLogFilters(): LogFilters {
  return { kind: '', level: '', service: '', q: '', instanceId: '', userId: '', traceId: '', from: '', to: '' }
}

/** A `datetime-local` value (the user's time zone) as an RFC 3339 instant, or undefined. */
export function instantOf(local: string): string | undefined {
  if (!local) return undefined
  const date = new Date(local)
  return Number.isNaN(date.getTime()) ? undefined : date.toISOString()
}

function idOf(text: string): number | undefined {
  const trimmed = text.trim()
  return /^[1-9]\d{0,17}$/.test(trimmed) ? Number(trimmed) : undefined
}

/** Fields the browser cannot even send (an id that is not a number), by query name. */
export function filterErrors(filters: LogFilters): Record<string, true> {
  const errors: Record<string, true> = {}
  if (filters.instanceId.trim() && idOf(filters.instanceId) === undefined) errors.instance_id = true
  if (filters.userId.trim() && idOf(filters.userId) === undefined) errors.user_id = true
  return errors
}

/** The query string for one page: blanks left out, times as instants, `before` from the last page. */
export function logQueryOf(filters: LogFilters, before?: string, limit = 50): LogQuery {
  const text = (value: string) => value.trim() || undefined
  return {
    kind: filters.kind || undefined,
    level: filters.level || undefined,
    service: filters.service || undefined,
    q: text(filters.q),
    instance_id: idOf(filters.instanceId),
    user_id: idOf(filters.userId),
    trace_id: text(filters.traceId),
    from: instantOf(filters.from),
    to: instantOf(filters.to),
    before,
    limit,
  }
}

export interface LogRow {
  /** Unique on the page: access and error lines have no id of their own (a nil UUID). */
  key: string
  doc: Schemas['LogDoc']
}

export function logRows(items: Schemas['LogDoc'][]): LogRow[] {
  return items.map((doc, i) => ({ key: `${doc.kind}:${doc.id}:${doc['@timestamp']}:${i}`, doc }))
}

/** The fields of a line worth a row in its detail, in reading order, leaving out empty ones. */
export function logFacts(doc: Schemas['LogDoc']): [string, string][] {
  const names: (keyof Schemas['LogDoc'])[] = [
    'kind', 'level', 'service', 'module', 'method', 'path', 'status', 'duration_ms',
    'trace_id', 'user_id', 'instance_id', 'ip', 'user_agent', 'audit_id',
  ]
  return names
    .filter((name) => doc[name] !== null && doc[name] !== undefined && doc[name] !== '')
    .map((name) => [name, String(doc[name])])
}

export function levelTagType(level: string): 'danger' | 'warning' | 'info' | 'primary' {
  switch (level.toUpperCase()) {
    case 'ERROR':
      return 'danger'
    case 'WARN':
      return 'warning'
    case 'DEBUG':
      return 'info'
    default:
      return 'primary'
  }
}
