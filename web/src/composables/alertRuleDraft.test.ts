import { describe, expect, it } from 'vitest'

import type { Schemas } from '../api/client'
import { channelErrors, conditionText, draftOf, emptyRuleDraft, ruleInputOf, rulePatchOf, thresholdForApi, thresholdForForm } from './alertRuleDraft'

const rule: Schemas['RuleView'] = {
  id: 4,
  rule_uuid: '0190a0b0-0000-7000-8000-000000000000',
  name: '延迟过高',
  description: '看门狗',
  rule_type: 'metric_threshold',
  metric_name: 'heartbeat_latency_ms',
  comparator: '>',
  threshold: 500,
  window_seconds: 300,
  instance_id: 7,
  level: 'WARNING',
  enabled: true,
  channels: [{ kind: 'webhook', target: 'https://hooks.example.com', has_secret: true }],
  cooldown_seconds: 300,
  created_by: 1,
  created_at: '2025-01-01T00:00:00Z',
  updated_at: '2025-01-01T00:00:00Z',
}

describe('ruleInputOf', () => {
  it('sends a heartbeat rule with a signed webhook and a robot', () => {
    const draft = {
      ...emptyRuleDraft(),
      name: ' 实例掉线 ',
      threshold: 2,
      instanceId: 3,
      level: 'CRITICAL' as const,
      channels: [
        { kind: 'webhook' as const, url: ' https://hooks.example.com/a ', secret: 's3cret' },
        { kind: 'wecom_robot' as const, url: 'https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=k', secret: 'ignored' },
      ],
    }
    expect(ruleInputOf(draft)).toEqual({
      name: '实例掉线',
      description: null,
      rule_type: 'heartbeat_missing',
      metric_name: null,
      comparator: null,
      threshold: 2,
      window_seconds: 300,
      cooldown_seconds: 300,
      instance_id: 3,
      level: 'CRITICAL',
      enabled: true,
      channels: [
        { kind: 'webhook', url: 'https://hooks.example.com/a', secret: 's3cret' },
        { kind: 'wecom_robot', url: 'https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=k' },
      ],
    })
  })

  it('sends a failure rate as a share and no threshold for instance errors', () => {
    expect(ruleInputOf({ ...emptyRuleDraft(), ruleType: 'task_failure_rate', threshold: 35 }).threshold).toBe(0.35)
    expect(ruleInputOf({ ...emptyRuleDraft(), ruleType: 'instance_error', threshold: 3 }).threshold).toBeNull()
    const metric = ruleInputOf({ ...emptyRuleDraft(), ruleType: 'metric_threshold', comparator: '>=', threshold: 800 })
    expect(metric).toMatchObject({ metric_name: 'heartbeat_latency_ms', comparator: '>=', threshold: 800 })
  })
})

describe('rulePatchOf', () => {
  it('sends nothing when nothing changed and keeps the sealed channels', () => {
    expect(rulePatchOf(draftOf(rule), rule)).toEqual({})
  })

  it('sends only the changed fields, a cleared description as empty text', () => {
    const draft = { ...draftOf(rule), name: '延迟过高!', description: '', threshold: 900, level: 'CRITICAL' as const, enabled: false }
    expect(rulePatchOf(draft, rule)).toEqual({ name: '延迟过高!', description: '', threshold: 900, level: 'CRITICAL', enabled: false })
  })

  it('replaces every channel only when they were typed again (none clears them)', () => {
    const draft = { ...draftOf(rule), replaceChannels: true, channels: [{ kind: 'webhook' as const, url: 'https://h.example.com/x', secret: '' }] }
    expect(rulePatchOf(draft, rule)).toEqual({ channels: [{ kind: 'webhook', url: 'https://h.example.com/x' }] })
    expect(rulePatchOf({ ...draftOf(rule), replaceChannels: true }, rule)).toEqual({ channels: [] })
  })

  it('sends no channels to a rule that had none unless some were added', () => {
    const bare = { ...rule, channels: [] }
    expect(draftOf(bare).replaceChannels).toBe(true)
    expect(rulePatchOf(draftOf(bare), bare)).toEqual({})
    const added = { ...draftOf(bare), channels: [{ kind: 'wecom_robot' as const, url: 'https://qyapi.weixin.qq.com/x?key=1', secret: '' }] }
    expect(rulePatchOf(added, bare)).toEqual({ channels: [{ kind: 'wecom_robot', url: 'https://qyapi.weixin.qq.com/x?key=1' }] })
  })

  it('never sends a cleared threshold (null would mean unchanged)', () => {
    expect(rulePatchOf({ ...draftOf(rule), threshold: null }, rule)).toEqual({})
  })
})

describe('thresholds', () => {
  it('shows a failure rate as a percentage and reads it back', () => {
    expect(thresholdForForm('task_failure_rate', 0.07)).toBe(7)
    expect(thresholdForApi('task_failure_rate', 7)).toBe(0.07)
    expect(thresholdForForm('heartbeat_missing', null)).toBeNull()
    expect(draftOf({ ...rule, rule_type: 'task_failure_rate', threshold: 0.2 }).threshold).toBe(20)
  })
})

describe('conditionText', () => {
  const t = (key: string, values?: Record<string, unknown>) => `${key} ${JSON.stringify(values ?? {})}`
  it('says when each type fires', () => {
    expect(conditionText(rule, t)).toBe('alertRules.when.metric {"metric":"heartbeat_latency_ms","comparator":">","value":500,"window":300}')
    expect(conditionText({ ...rule, rule_type: 'heartbeat_missing', threshold: null }, t)).toBe('alertRules.when.heartbeatDefault {}')
    expect(conditionText({ ...rule, rule_type: 'task_failure_rate', threshold: 0.25 }, t)).toBe('alertRules.when.failureRate {"percent":25,"window":300}')
    expect(conditionText({ ...rule, rule_type: 'desk_queue_wait', threshold: 120 }, t)).toBe('alertRules.when.queueWait {"seconds":120}')
  })
})

describe('channelErrors', () => {
  it('groups the API errors by channel', () => {
    expect(channelErrors({ name: 'x', 'channels[1].url': 'not allowed', 'channels[1].secret': 'too long', 'channels[0].kind': 'bad' })).toEqual({
      0: { kind: 'bad' },
      1: { url: 'not allowed', secret: 'too long' },
    })
  })
})
