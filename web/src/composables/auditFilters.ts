// The audit log's filters: read from the page address (so a link such as "this user's audit
// trail" opens filtered) and turned into the API's query.

import { fromLocalInput } from './userGrants'

export const AUDIT_RESULTS = ['SUCCESS', 'FAILURE'] as const
export const OPERATION_TYPES = ['CREATE', 'UPDATE', 'DELETE', 'SECURITY'] as const

export interface AuditFilters {
  username: string
  operation: string
  operation_type: string
  resource_type: string
  resource_id: string
  result: '' | (typeof AUDIT_RESULTS)[number]
  /** `datetime-local` values, local time. */
  from: string
  to: string
}

export function emptyAuditFilters(): AuditFilters {
  return { username: '', operation: '', operation_type: '', resource_type: '', resource_id: '', result: '', from: '', to: '' }
}

/** Filters named in the address; anything else there is ignored. */
export function auditFiltersFrom(query: Record<string, unknown>): AuditFilters {
  const filters = emptyAuditFilters()
  const text = (key: keyof AuditFilters) => (typeof query[key] === 'string' ? (query[key] as string) : '')
  for (const key of ['username', 'operation', 'resource_type', 'resource_id', 'from', 'to'] as const) filters[key] = text(key)
  const type = text('operation_type').toUpperCase()
  if ((OPERATION_TYPES as readonly string[]).includes(type)) filters.operation_type = type
  const result = text('result').toUpperCase()
  if ((AUDIT_RESULTS as readonly string[]).includes(result)) filters.result = result as AuditFilters['result']
  return filters
}

/** The filters that are set, as they go back into the address. */
export function auditAddress(filters: AuditFilters): Record<string, string> {
  return Object.fromEntries(Object.entries(filters).filter(([, v]) => v.trim() !== '').map(([k, v]) => [k, v.trim()]))
}

/** The API's query for these filters: blanks left out, times as UTC instants. */
export function auditQuery(filters: AuditFilters) {
  const set = (v: string) => v.trim() || undefined
  return {
    username: set(filters.username),
    operation: set(filters.operation),
    operation_type: set(filters.operation_type),
    resource_type: set(filters.resource_type),
    resource_id: set(filters.resource_id),
    result: filters.result || undefined,
    from: fromLocalInput(filters.from) ?? undefined,
    to: fromLocalInput(filters.to) ?? undefined,
  }
}
