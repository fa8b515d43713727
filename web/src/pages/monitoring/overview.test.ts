import { describe, expect, it } from 'vitest'

import { breakdown, INSTANCE_ORDER, needingAttention, total } from './overview'

describe('overview figures', () => {
  it('lists known statuses first, at zero when absent, then unknown ones', () => {
    expect(breakdown({ online: 3, unknown: 1, error: 2 }, INSTANCE_ORDER)).toEqual([
      ['online', 3],
      ['error', 2],
      ['offline', 0],
      ['maintenance', 0],
      ['unknown', 1],
    ])
  })

  it('adds up counts and the instances that need a look', () => {
    expect(total({ a: 1, b: 2 })).toBe(3)
    expect(total({})).toBe(0)
    expect(needingAttention({ online: 5, error: 1, offline: 2, maintenance: 4 })).toBe(3)
  })
})
