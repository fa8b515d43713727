import { describe, expect, it } from 'vitest'

import { SeenIds } from './useDeskStream'

describe('event ids already handed on', () => {
  it('lets each id through once and remembers the newest', () => {
    const seen = new SeenIds(3)
    expect([5, 6, 5, 4].map((id) => seen.fresh(id))).toEqual([true, true, false, true])
    expect(seen.last).toBe(6)
    seen.fresh(7)
    // The oldest remembered (5) was forgotten to stay within the limit.
    expect(seen.fresh(5)).toBe(true)
  })
})
