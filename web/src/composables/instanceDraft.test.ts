import { describe, expect, it } from 'vitest'

import type { Schemas } from '../api/client'
import { createBody, draftFrom, emptyDraft, patchBody, secretSet } from './instanceDraft'

function instance(over: Partial<Schemas['InstanceView']> = {}): Schemas['InstanceView'] {
  return {
    id: 7,
    uuid: '00000000-0000-0000-0000-000000000007',
    name: 'agent-1',
    kind: 'agent',
    status: 'online',
    enabled: true,
    callback_url: 'http://wework/callbacks/x',
    proxy_password_set: false,
    max_accounts: 10,
    current_accounts: 2,
    heartbeat_interval: 30,
    missed_heartbeats: 0,
    restart_count: 0,
    total_messages: 0,
    today_messages: 0,
    api_url: 'http://agent:9000',
    config: [{ key: 'agent_secret', value: '******', value_type: 'string', secret: true }],
    created_at: '2026-01-01T00:00:00Z',
    updated_at: '2026-01-01T00:00:00Z',
    ...over,
  }
}

describe('draftFrom', () => {
  it('shows plain values and leaves secrets empty', () => {
    const wecom = instance({
      kind: 'wecom',
      config: [
        { key: 'corp_id', value: 'ww123', value_type: 'string', secret: false },
        { key: 'corp_secret', value: '******', value_type: 'string', secret: true },
        { key: 'agent_id', value: 1000002, value_type: 'number', secret: false },
      ],
    })
    const draft = draftFrom(wecom)
    expect(draft.config).toMatchObject({ corp_id: 'ww123', corp_secret: '', agent_id: '1000002', robot_key: '' })
    expect(secretSet(wecom, 'corp_secret')).toBe(true)
    expect(secretSet(wecom, 'robot_key')).toBe(false)
  })
})

describe('patchBody', () => {
  it('sends nothing when nothing changed, the stored secret is kept', () => {
    const current = instance()
    expect(patchBody(current, draftFrom(current))).toEqual({})
  })

  it('sends only the changed fields and no secret unless one was typed', () => {
    const current = instance()
    const draft = { ...draftFrom(current), name: 'agent-2', heartbeat_interval: 10 }
    expect(patchBody(current, draft)).toEqual({ name: 'agent-2', heartbeat_interval: 10 })
  })

  it('replaces a secret the user typed and clears emptied optional texts', () => {
    const current = instance({ description: 'old', proxy_host: 'proxy', proxy_password_set: true })
    const draft = draftFrom(current)
    draft.config.agent_secret = 'new-secret'
    draft.description = ''
    draft.proxy_host = ''
    expect(patchBody(current, draft)).toEqual({ description: null, proxy_host: null, config: { agent_secret: 'new-secret' } })
  })

  it('sends numbers for numeric config entries', () => {
    const current = instance({ kind: 'wecom', config: [] })
    const draft = draftFrom(current)
    draft.config.agent_id = '1000003'
    expect(patchBody(current, draft).config).toEqual({ agent_id: 1000003 })
  })
})

describe('createBody', () => {
  it('leaves empty optional fields out', () => {
    const draft = { ...emptyDraft(), name: 'a', api_url: 'http://agent:9000', config: { agent_secret: 's' } }
    expect(createBody('agent', draft)).toEqual({
      name: 'a',
      kind: 'agent',
      api_url: 'http://agent:9000',
      description: null,
      heartbeat_interval: 30,
      max_accounts: 10,
      enabled: true,
      config: { agent_secret: 's' },
    })
  })
})
