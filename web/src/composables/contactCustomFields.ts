// Custom fields (a JSON object on contacts and groups) edited as rows of key and value. Text
// stays text; a value that was not text (a number, a list …) is edited as JSON and saved as such,
// so editing one field never turns another's number into a string.

export interface FieldRow {
  key: string
  value: string
  /** The value is JSON (it was not a string when loaded). */
  json: boolean
}

export type FieldError = 'keyMissing' | 'keyDuplicate' | 'badJson'

export function rowsOf(fields: unknown): FieldRow[] {
  if (!fields || typeof fields !== 'object' || Array.isArray(fields)) return []
  return Object.entries(fields as Record<string, unknown>).map(([key, value]) =>
    typeof value === 'string' ? { key, value, json: false } : { key, value: JSON.stringify(value), json: true },
  )
}

/**
 * The object to save, or the rows' errors by index. Blank rows are dropped; `null` when no field
 * is left (the API clears the fields).
 */
export function fieldsOf(rows: FieldRow[]): { fields: Record<string, unknown> | null; errors: Record<number, FieldError> } {
  const fields: Record<string, unknown> = {}
  const errors: Record<number, FieldError> = {}
  rows.forEach((row, i) => {
    const key = row.key.trim()
    if (!key && !row.value.trim()) return
    if (!key) {
      errors[i] = 'keyMissing'
      return
    }
    if (Object.prototype.hasOwnProperty.call(fields, key)) {
      errors[i] = 'keyDuplicate'
      return
    }
    if (row.json) {
      try {
        fields[key] = JSON.parse(row.value)
      } catch {
        errors[i] = 'badJson'
      }
      return
    }
    fields[key] = row.value
  })
  return { fields: Object.keys(fields).length ? fields : null, errors }
}

/** Whether two field objects hold the same entries (key order aside). */
export function sameFields(a: unknown, b: unknown): boolean {
  return canonical(a ?? null) === canonical(b ?? null)
}

function canonical(value: unknown): string {
  if (value && typeof value === 'object' && !Array.isArray(value)) {
    const entries = Object.entries(value as Record<string, unknown>).sort(([x], [y]) => (x < y ? -1 : x > y ? 1 : 0))
    if (!entries.length) return 'null'
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonical(v)}`).join(',')}}`
  }
  return JSON.stringify(value)
}
