import { describe, expect, it } from 'vitest'

import { fieldsOf, rowsOf, sameFields } from './contactCustomFields'

describe('custom fields as rows', () => {
  it('edits text as text and anything else as JSON', () => {
    expect(rowsOf({ level: 'gold', score: 12, extra: { a: [1] } })).toEqual([
      { key: 'level', value: 'gold', json: false },
      { key: 'score', value: '12', json: true },
      { key: 'extra', value: '{"a":[1]}', json: true },
    ])
    expect(rowsOf(null)).toEqual([])
    expect(rowsOf([1, 2])).toEqual([])
  })

  it('round-trips without turning numbers into strings', () => {
    const fields = { level: 'gold', score: 12, ok: true }
    expect(fieldsOf(rowsOf(fields))).toEqual({ fields, errors: {} })
  })

  it('drops blank rows, trims names and clears when nothing is left', () => {
    expect(fieldsOf([{ key: ' city ', value: '杭州', json: false }, { key: '', value: ' ', json: false }])).toEqual({
      fields: { city: '杭州' },
      errors: {},
    })
    expect(fieldsOf([{ key: '', value: '', json: false }])).toEqual({ fields: null, errors: {} })
  })

  it('names the rows it cannot save', () => {
    const { errors } = fieldsOf([
      { key: 'a', value: '1', json: false },
      { key: '', value: 'orphan', json: false },
      { key: 'a', value: '2', json: false },
      { key: 'n', value: '{bad', json: true },
    ])
    expect(errors).toEqual({ 1: 'keyMissing', 2: 'keyDuplicate', 3: 'badJson' })
  })

  it('compares field objects regardless of key order', () => {
    expect(sameFields({ a: 1, b: { c: 2, d: 3 } }, { b: { d: 3, c: 2 }, a: 1 })).toBe(true)
    expect(sameFields({ a: 1 }, { a: '1' })).toBe(false)
    expect(sameFields(null, {})).toBe(true)
    expect(sameFields(undefined, null)).toBe(true)
    expect(sameFields({ a: 1 }, null)).toBe(false)
  })
})
