// The old → new view of an audit entry: which top-level keys changed, and how. An entry stores the
// whole record before and after (a user, a role, an instance), so most keys are the same and the
// reader needs the few that are not.

export type DiffKind = 'added' | 'removed' | 'changed' | 'same'

export interface DiffRow {
  key: string
  kind: DiffKind
  /** The value before, as text; `undefined` when the key was absent. */
  before?: string
  /** The value after, as text; `undefined` when the key is gone. */
  after?: string
}

export interface AuditDiff {
  changed: DiffRow[]
  unchanged: DiffRow[]
}

/** Key of the single row used when a side is a plain value rather than an object. */
export const WHOLE_VALUE = ''

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

/** JSON with object keys sorted, so two equal values always print the same. */
export function canonical(value: unknown): string {
  return JSON.stringify(value, (_, v: unknown) =>
    isRecord(v) ? Object.fromEntries(Object.keys(v).sort().map((k) => [k, v[k]])) : v,
  )
}

/** A value as the diff shows it: strings bare, nested values as indented JSON. */
export function showValue(value: unknown): string {
  if (typeof value === 'string') return value
  if (value === undefined) return ''
  if (typeof value === 'object' && value !== null) return JSON.stringify(value, null, 2)
  return String(value)
}

function row(key: string, before: unknown, after: unknown, hadBefore: boolean, hasAfter: boolean): DiffRow {
  let kind: DiffKind
  if (!hadBefore) kind = 'added'
  else if (!hasAfter) kind = 'removed'
  else kind = canonical(before) === canonical(after) ? 'same' : 'changed'
  return {
    key,
    kind,
    before: hadBefore ? showValue(before) : undefined,
    after: hasAfter ? showValue(after) : undefined,
  }
}

/**
 * Compares the old and new values of an audit entry key by key. `null`/absent on one side (a
 * creation or a deletion) makes every key of the other side added or removed. Sides that are not
 * objects are compared as one whole value. Changed keys come first in the order of the new
 * record, then keys only the old one had.
 */
export function diffValues(oldValues: unknown, newValues: unknown): AuditDiff {
  const before = oldValues ?? undefined
  const after = newValues ?? undefined
  const rows: DiffRow[] = []
  if ((before === undefined || isRecord(before)) && (after === undefined || isRecord(after))) {
    const old = before ?? {}
    const now = after ?? {}
    const keys = [...Object.keys(now), ...Object.keys(old).filter((k) => !(k in now))]
    for (const key of keys) rows.push(row(key, old[key], now[key], key in old, key in now))
  } else {
    rows.push(row(WHOLE_VALUE, before, after, before !== undefined, after !== undefined))
  }
  return {
    changed: rows.filter((r) => r.kind !== 'same'),
    unchanged: rows.filter((r) => r.kind === 'same'),
  }
}

/** Whether an entry carries anything to compare. */
export function hasValues(entry: { old_values?: unknown; new_values?: unknown }): boolean {
  return (entry.old_values ?? null) !== null || (entry.new_values ?? null) !== null
}
