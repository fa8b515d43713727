// How alert levels and statuses look: one colour per meaning, the same on every alerts page.
import type { Schemas } from '../api/client'

type TagType = 'danger' | 'warning' | 'info' | 'success' | 'primary'

export const ALERT_STATUSES: Schemas['AlertStatus'][] = ['ACTIVE', 'ACKNOWLEDGED', 'RESOLVED']

export function levelTag(level: Schemas['AlertLevel']): TagType {
  return level === 'CRITICAL' ? 'danger' : level === 'WARNING' ? 'warning' : 'info'
}

export function statusTag(status: Schemas['AlertStatus']): TagType {
  return status === 'ACTIVE' ? 'danger' : status === 'ACKNOWLEDGED' ? 'warning' : 'success'
}

/** A query-string value as a positive id, or '' (no filter). */
export function idParam(value: unknown): number | '' {
  const text = Array.isArray(value) ? value[0] : value
  return typeof text === 'string' && /^[1-9]\d{0,17}$/.test(text) ? Number(text) : ''
}
