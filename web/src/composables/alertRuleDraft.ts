// The alert rule form's state and its mapping to the API's `RuleInput` / `RulePatch`.
// The API decides what is valid; this only shapes what the form holds into what the API reads.
import type { Schemas } from '../api/client'

export type RuleType = Schemas['AlertRuleType']
export type ChannelKind = Schemas['AlertChannelKind']
export type AlertLevel = Schemas['AlertLevel']

export const RULE_TYPES: RuleType[] = ['heartbeat_missing', 'instance_error', 'metric_threshold', 'task_failure_rate', 'desk_queue_wait']
export const LEVELS: AlertLevel[] = ['INFO', 'WARNING', 'CRITICAL']
export const CHANNEL_KINDS: ChannelKind[] = ['webhook', 'wecom_robot']
/** The metrics and comparators `metric_threshold` accepts (service/src/alerts/rules.rs). */
export const METRICS = ['heartbeat_latency_ms']
export const COMPARATORS = ['>', '>=', '<', '<=']

export interface ChannelDraft {
  kind: ChannelKind
  url: string
  /** Webhook signing key; empty means none. */
  secret: string
}

export interface RuleDraft {
  name: string
  description: string
  ruleType: RuleType
  metricName: string
  comparator: string
  /** In the form's unit: a percentage for `task_failure_rate`, the API's value otherwise. */
  threshold: number | null
  windowSeconds: number
  cooldownSeconds: number
  instanceId: number | null
  level: AlertLevel
  enabled: boolean
  channels: ChannelDraft[]
  /**
   * Channels are stored sealed and shown only as kind and host, so an edit cannot keep one and
   * change another: they are sent only when the user typed the whole list again.
   */
  replaceChannels: boolean
}

export function emptyRuleDraft(): RuleDraft {
  return {
    name: '',
    description: '',
    ruleType: 'heartbeat_missing',
    metricName: METRICS[0],
    comparator: '>',
    threshold: null,
    windowSeconds: 300,
    cooldownSeconds: 300,
    instanceId: null,
    level: 'WARNING',
    enabled: true,
    channels: [],
    replaceChannels: true,
  }
}

export function emptyChannel(kind: ChannelKind = 'webhook'): ChannelDraft {
  return { kind, url: '', secret: '' }
}

/** The API's threshold as the form shows it (a failure rate as a percentage). */
export function thresholdForForm(type: RuleType, value: number | null | undefined): number | null {
  if (value === null || value === undefined) return null
  return type === 'task_failure_rate' ? round(value * 100) : value
}

/** The form's threshold as the API reads it; `instance_error` has none. */
export function thresholdForApi(type: RuleType, value: number | null): number | null {
  if (value === null || type === 'instance_error') return null
  return type === 'task_failure_rate' ? round(value / 100) : value
}

function round(value: number): number {
  return Math.round(value * 1e6) / 1e6
}

export function draftOf(rule: Schemas['RuleView']): RuleDraft {
  return {
    name: rule.name,
    description: rule.description ?? '',
    ruleType: rule.rule_type,
    metricName: rule.metric_name ?? METRICS[0],
    comparator: rule.comparator ?? '>',
    threshold: thresholdForForm(rule.rule_type, rule.threshold),
    windowSeconds: rule.window_seconds,
    cooldownSeconds: rule.cooldown_seconds,
    instanceId: rule.instance_id ?? null,
    level: rule.level,
    enabled: rule.enabled,
    channels: [],
    // Nothing sealed to keep: the channels are simply typed in.
    replaceChannels: rule.channels.length === 0,
  }
}

function channelsOf(draft: RuleDraft): Schemas['ChannelInput'][] {
  return draft.channels.map((c) => ({
    kind: c.kind,
    url: c.url.trim(),
    ...(c.kind === 'webhook' && c.secret ? { secret: c.secret } : {}),
  }))
}

export function ruleInputOf(draft: RuleDraft): Schemas['RuleInput'] {
  const metric = draft.ruleType === 'metric_threshold'
  return {
    name: draft.name.trim(),
    description: draft.description.trim() || null,
    rule_type: draft.ruleType,
    metric_name: metric ? draft.metricName : null,
    comparator: metric ? draft.comparator : null,
    threshold: thresholdForApi(draft.ruleType, draft.threshold),
    window_seconds: draft.windowSeconds,
    cooldown_seconds: draft.cooldownSeconds,
    instance_id: draft.instanceId,
    level: draft.level,
    enabled: draft.enabled,
    channels: channelsOf(draft),
  }
}

/**
 * Only what changed, so an edit never rewrites fields someone else changed meanwhile. Type,
 * metric and instance are fixed once created. A cleared description is sent as '' (the API
 * clears it); a cleared threshold cannot be sent (null means "unchanged") and stays as it was.
 */
export function rulePatchOf(draft: RuleDraft, rule: Schemas['RuleView']): Schemas['RulePatch'] {
  const patch: Schemas['RulePatch'] = {}
  const name = draft.name.trim()
  if (name !== rule.name) patch.name = name
  const description = draft.description.trim()
  if (description !== (rule.description ?? '')) patch.description = description
  if (rule.rule_type === 'metric_threshold' && draft.comparator !== rule.comparator) patch.comparator = draft.comparator
  const threshold = thresholdForApi(rule.rule_type, draft.threshold)
  if (threshold !== null && threshold !== (rule.threshold ?? null)) patch.threshold = threshold
  if (draft.windowSeconds !== rule.window_seconds) patch.window_seconds = draft.windowSeconds
  if (draft.cooldownSeconds !== rule.cooldown_seconds) patch.cooldown_seconds = draft.cooldownSeconds
  if (draft.level !== rule.level) patch.level = draft.level
  if (draft.enabled !== rule.enabled) patch.enabled = draft.enabled
  if (draft.replaceChannels && (draft.channels.length > 0 || rule.channels.length > 0)) patch.channels = channelsOf(draft)
  return patch
}

type Translate = (key: string, values?: Record<string, unknown>) => string

/** One line saying when the rule fires, for the list. */
export function conditionText(rule: Schemas['RuleView'], t: Translate): string {
  switch (rule.rule_type) {
    case 'heartbeat_missing':
      return rule.threshold == null ? t('alertRules.when.heartbeatDefault') : t('alertRules.when.heartbeat', { n: rule.threshold })
    case 'instance_error':
      return t('alertRules.when.instanceError')
    case 'metric_threshold':
      return t('alertRules.when.metric', {
        metric: rule.metric_name ?? '',
        comparator: rule.comparator ?? '>',
        value: rule.threshold ?? '',
        window: rule.window_seconds,
      })
    case 'task_failure_rate':
      return t('alertRules.when.failureRate', { percent: thresholdForForm('task_failure_rate', rule.threshold ?? 0.5), window: rule.window_seconds })
    case 'desk_queue_wait':
      return t('alertRules.when.queueWait', { seconds: rule.threshold ?? 300 })
  }
}

/**
 * `{ 'channels[1].url': '…' }` → `{ 1: { url: '…' } }`: the API names each channel's mistakes by
 * index, the channel editor shows them beside that channel's fields.
 */
export function channelErrors(fields: Record<string, string>): Record<number, Record<string, string>> {
  const out: Record<number, Record<string, string>> = {}
  for (const [field, message] of Object.entries(fields)) {
    const match = /^channels\[(\d+)\]\.(\w+)$/.exec(field)
    if (!match) continue
    const index = Number(match[1])
    out[index] = { ...out[index], [match[2]]: message }
  }
  return out
}
