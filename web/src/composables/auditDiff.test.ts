import { describe, expect, it } from 'vitest'

import { canonical, diffValues, hasValues, showValue, WHOLE_VALUE } from './auditDiff'

describe('diffValues', () => {
  it('lists changed keys with before and after, and keeps the rest apart', () => {
    const diff = diffValues(
      { username: 'bob', status: 'active', roles: [{ role_id: 5, expires_at: '2026-12-03T17:00:00Z' }] },
      { username: 'bob', status: 'active', roles: [{ role_id: 3, expires_at: null }, { role_id: 5, expires_at: '2026-12-03T17:00:00Z' }] },
    )
    expect(diff.changed.map((r) => r.key)).toEqual(['roles'])
    expect(diff.changed[0]!.kind).toBe('changed')
    expect(diff.changed[0]!.before).toContain('"role_id": 5')
    expect(diff.changed[0]!.after).toContain('"role_id": 3')
    expect(diff.unchanged.map((r) => r.key)).toEqual(['username', 'status'])
  })

  it('treats a creation as every key added and a deletion as every key removed', () => {
    const created = diffValues(null, { name: 'ops', enabled: true })
    expect(created.changed).toEqual([
      { key: 'name', kind: 'added', before: undefined, after: 'ops' },
      { key: 'enabled', kind: 'added', before: undefined, after: 'true' },
    ])
    const deleted = diffValues({ name: 'ops' }, undefined)
    expect(deleted.changed).toEqual([{ key: 'name', kind: 'removed', before: 'ops', after: undefined }])
  })

  it('marks keys that appear or disappear between two records', () => {
    const diff = diffValues({ a: 1, gone: 'x' }, { a: 1, fresh: null })
    expect(diff.changed).toEqual([
      { key: 'fresh', kind: 'added', before: undefined, after: 'null' },
      { key: 'gone', kind: 'removed', before: 'x', after: undefined },
    ])
  })

  it('ignores the order of keys inside nested objects', () => {
    const diff = diffValues({ config: { a: 1, b: 2 } }, { config: { b: 2, a: 1 } })
    expect(diff.changed).toEqual([])
    expect(diff.unchanged).toHaveLength(1)
  })

  it('compares values that are not objects as one whole value', () => {
    expect(diffValues([1], [1, 2]).changed).toEqual([{ key: WHOLE_VALUE, kind: 'changed', before: '[\n  1\n]', after: '[\n  1,\n  2\n]' }])
    expect(diffValues('a', { a: 1 }).changed[0]!.key).toBe(WHOLE_VALUE)
  })

  it('has nothing to show for an entry without values', () => {
    expect(diffValues(null, undefined)).toEqual({ changed: [], unchanged: [] })
    expect(hasValues({ old_values: null, new_values: null })).toBe(false)
    expect(hasValues({ new_values: { totp_enabled: false } })).toBe(true)
  })
})

describe('showValue and canonical', () => {
  it('prints strings bare and nested values as JSON', () => {
    expect(showValue('bob')).toBe('bob')
    expect(showValue(3)).toBe('3')
    expect(showValue(null)).toBe('null')
    expect(showValue({ a: [1] })).toBe('{\n  "a": [\n    1\n  ]\n}')
  })
  it('sorts keys at every depth', () => {
    expect(canonical({ b: 1, a: { d: 1, c: 2 } })).toBe('{"a":{"c":2,"d":1},"b":1}')
  })
})
