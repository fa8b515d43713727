import { describe, expect, it } from 'vitest'

import { channelFor, emptyDraft, estimateOf, evenWeights, stepOfField, taskInputOf } from './broadcastDraft'

describe('taskInputOf', () => {
  it('sends inline text now to a filtered audience', () => {
    const draft = { ...emptyDraft('Asia/Shanghai'), name: ' 双十一 ', instanceIds: [3], tagsAll: [7, 8], keyword: ' vip ', content: '你好' }
    expect(taskInputOf(draft)).toEqual({
      name: '双十一',
      task_type: 'broadcast',
      channel: 'direct',
      audience: { filter: { instance_ids: [3], tags_any: [], tags_all: [7, 8], contact_type: null, q: 'vip' } },
      rate_per_minute: null,
      message_type: 'text',
      content: '你好',
    })
  })

  it('uses a template with its variables, a cron in the zone, quiet hours and a cap', () => {
    const draft = {
      ...emptyDraft('Asia/Shanghai'),
      name: '周报',
      templateId: 12,
      variables: { coupon: 'W11' },
      when: 'cron' as const,
      cron: '0 9 * * MON ',
      ratePerMinute: 30,
      quietHours: { enabled: true, start: '22:00', end: '08:00' },
      frequencyCap: { enabled: true, max: 2, windowHours: 72 },
    }
    const input = taskInputOf(draft)
    expect(input.template_id).toBe(12)
    expect(input.variables).toEqual({ coupon: 'W11' })
    expect(input.content).toBeUndefined()
    expect(input.cron).toBe('0 9 * * MON')
    expect(input.timezone).toBe('Asia/Shanghai')
    expect(input.quiet_hours).toEqual({ start: '22:00', end: '08:00', timezone: 'Asia/Shanghai' })
    expect(input.frequency_cap).toEqual({ max: 2, window_hours: 72 })
    expect(input.rate_per_minute).toBe(30)
    expect(input.scheduled_time).toBeUndefined()
  })

  it('schedules at a time only when asked', () => {
    const at = taskInputOf({ ...emptyDraft(), when: 'at', scheduledTime: '2026-12-12T02:00:00.000Z' })
    expect(at.scheduled_time).toBe('2026-12-12T02:00:00.000Z')
    expect(at.cron).toBeUndefined()
  })
})

describe('estimateOf and stepOfField', () => {
  it('estimates the same audience the task gets', () => {
    const draft = { ...emptyDraft(), instanceIds: [1], ratePerMinute: 20 }
    expect(estimateOf(draft).audience).toEqual(taskInputOf(draft).audience)
    expect(estimateOf(draft).rate_per_minute).toBe(20)
  })

  it('sends each refused field back to its step', () => {
    expect(stepOfField('audience.filter')).toBe(0)
    expect(stepOfField('channel')).toBe(0)
    expect(stepOfField('variables.coupon')).toBe(1)
    expect(stepOfField('cron')).toBe(2)
    expect(stepOfField('quiet_hours.start')).toBe(2)
    expect(stepOfField('name')).toBe(3)
  })
})

describe('channelFor', () => {
  it('sends a mass message only when every instance is a WeCom app', () => {
    expect(channelFor(['wecom', 'wecom'])).toBe('customer_mass')
    expect(channelFor(['wecom', 'agent'])).toBe('direct')
    expect(channelFor(['agent'])).toBe('direct')
    expect(channelFor([])).toBe('direct')
  })
})

describe('segments and A/B versions', () => {
  it('sends to a saved segment instead of the conditions', () => {
    const draft = { ...emptyDraft('UTC'), audienceMode: 'segment' as const, segmentId: 9, instanceIds: [1] }
    expect(taskInputOf(draft).audience).toEqual({ segment_id: 9 })
    expect(estimateOf(draft).audience).toEqual({ segment_id: 9 })
  })

  it('sends versions with their shares and the test instead of one text', () => {
    const draft = emptyDraft('UTC')
    draft.name = 'AB'
    draft.content = 'ignored'
    draft.variants.enabled = true
    draft.variants.items = [
      { name: ' 短 ', weight: 70, content: '短文案' },
      { name: '', weight: 30, content: '长文案 {{name}}' },
    ]
    draft.variants.test.enabled = true
    const input = taskInputOf(draft)
    expect(input.content).toBeUndefined()
    expect(input.variants).toEqual([
      { name: '短', weight: 70, content: '短文案' },
      { name: null, weight: 30, content: '长文案 {{name}}' },
    ])
    expect(input.variant_test).toEqual({ sample_percent: 20, decide_after_minutes: 120 })
    expect(stepOfField('variants[1].content')).toBe(1)
    expect(stepOfField('variant_test.sample_percent')).toBe(1)
  })

  it('splits shares evenly so they add up to 100', () => {
    expect(evenWeights(2)).toEqual([50, 50])
    expect(evenWeights(3)).toEqual([34, 33, 33])
    expect(evenWeights(5).reduce((a, b) => a + b, 0)).toBe(100)
  })
})
