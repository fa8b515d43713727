import { describe, expect, it } from 'vitest'

import type { Schemas } from '../api/client'
import { followRun } from './instanceSync'

const run = (status: Schemas['SyncRunView']['status'], contacts: number): Schemas['SyncRunView'] => ({
  id: 1,
  instance_id: 7,
  status,
  accounts: 2,
  contacts,
  groups: 0,
  members: 0,
  removed: 0,
  created_at: '2026-01-01T00:00:00Z',
})

describe('followRun', () => {
  it('polls until the run finishes and reports each state', async () => {
    const answers = [run('running', 10), undefined, run('succeeded', 80)]
    const seen: string[] = []
    const last = await followRun(
      async () => run('pending', 0),
      async () => answers.shift(),
      (r) => seen.push(`${r.status}:${r.contacts}`),
      () => false,
      0,
    )
    expect(last.status).toBe('succeeded')
    expect(seen).toEqual(['pending:0', 'running:10', 'running:10', 'succeeded:80'])
  })

  it('stops polling when the page is gone', async () => {
    let polls = 0
    const last = await followRun(
      async () => run('running', 0),
      async () => (polls++, run('running', 1)),
      () => {},
      () => polls >= 2,
      0,
    )
    expect(polls).toBe(2)
    expect(last.status).toBe('running')
  })
})
