// The A/B significance the API computes, told in the console's language: the API's `note` is
// English, so the words are made here from its figures.
import type { Schemas } from '../api/client'

/** Fewer sends than this per version are too few to compare (the API's threshold). */
export const MIN_SENT_TO_COMPARE = 30

export type SignificanceWords =
  | { kind: 'tooFew'; leader: string; runnerUp: string; leaderSent: number; runnerUpSent: number }
  | { kind: 'significant' | 'notSignificant'; leader: string; runnerUp: string; points: string; p: string }

export function significanceWords(outcomes: Schemas['TaskOutcomes']): SignificanceWords | null {
  const s = outcomes.significance
  if (!s) return null
  const lead = outcomes.variants.find((v) => v.key === s.leader)
  const next = outcomes.variants.find((v) => v.key === s.runner_up)
  if (!lead || !next) return null
  if (lead.sent < MIN_SENT_TO_COMPARE || next.sent < MIN_SENT_TO_COMPARE) {
    return { kind: 'tooFew', leader: lead.key, runnerUp: next.key, leaderSent: lead.sent, runnerUpSent: next.sent }
  }
  return {
    kind: s.significant ? 'significant' : 'notSignificant',
    leader: lead.key,
    runnerUp: next.key,
    points: ((lead.reply_rate - next.reply_rate) * 100).toFixed(1),
    p: s.p_value.toFixed(3),
  }
}
