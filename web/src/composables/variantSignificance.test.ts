import { describe, expect, it } from 'vitest'

import type { Schemas } from '../api/client'
import { significanceWords } from './variantSignificance'

const variant = (key: string, sent: number, replied: number) => ({
  key,
  name: null,
  weight: 50,
  sent,
  replied,
  reply_rate: replied / sent,
  opt_outs: 0,
  winner: false,
})

function outcomes(a: [number, number], b: [number, number], significant: boolean, p: number) {
  return {
    variants: [variant('A', ...a), variant('B', ...b)],
    significance: { leader: 'B', runner_up: 'A', z: 2, p_value: p, significant, note: 'english' },
  } as unknown as Schemas['TaskOutcomes']
}

describe('significance words', () => {
  it('say by how many points the leader leads and whether it is chance', () => {
    expect(significanceWords(outcomes([1000, 50], [1000, 100], true, 0.0001))).toEqual({
      kind: 'significant',
      leader: 'B',
      runnerUp: 'A',
      points: '5.0',
      p: '0.000',
    })
    expect(significanceWords(outcomes([40, 1], [40, 3], false, 0.305))?.kind).toBe('notSignificant')
  })

  it('say when there are too few sends to compare', () => {
    expect(significanceWords(outcomes([10, 0], [10, 5], false, 0.01))).toMatchObject({ kind: 'tooFew', leaderSent: 10, runnerUpSent: 10 })
  })

  it('say nothing without a comparison', () => {
    expect(significanceWords({ variants: [], significance: null } as unknown as Schemas['TaskOutcomes'])).toBeNull()
  })
})
