import type { Schemas } from '../api/client'

/** One A/B version of the text, with its share of the audience in percent. */
export interface VariantDraft {
  name: string
  weight: number
  content: string
}

/** What the operator fills in across the wizard's steps. */
export interface BroadcastDraft {
  name: string
  /** `direct`: one chat per receiver through agent instances; `customer_mass`: one WeCom mass
   * message per member, which the member confirms in the WeCom client. */
  channel: 'direct' | 'customer_mass'
  /** Choose receivers by conditions here, or by a saved segment. */
  audienceMode: 'filter' | 'segment'
  segmentId?: number
  instanceIds: number[]
  tagsAny: number[]
  tagsAll: number[]
  contactType?: Schemas['ContactType']
  keyword: string
  templateId?: number
  variables: Record<string, string | number | boolean>
  content: string
  when: 'now' | 'at' | 'cron'
  scheduledTime?: string
  cron: string
  timezone: string
  ratePerMinute?: number
  quietHours: { enabled: boolean; start: string; end: string }
  frequencyCap: { enabled: boolean; max: number; windowHours: number }
  /** A/B versions instead of one text; with a test, the best by reply rate goes to the rest. */
  variants: {
    enabled: boolean
    items: VariantDraft[]
    test: { enabled: boolean; samplePercent: number; decideAfterMinutes: number }
  }
}

/** Version keys in order, as the API names them. */
export const VARIANT_KEYS = ['A', 'B', 'C', 'D', 'E'] as const

export function emptyDraft(timezone = Intl.DateTimeFormat().resolvedOptions().timeZone): BroadcastDraft {
  return {
    name: '',
    channel: 'direct',
    audienceMode: 'filter',
    instanceIds: [],
    tagsAny: [],
    tagsAll: [],
    keyword: '',
    variables: {},
    content: '',
    when: 'now',
    cron: '',
    timezone,
    quietHours: { enabled: false, start: '22:00', end: '08:00' },
    frequencyCap: { enabled: false, max: 1, windowHours: 24 },
    variants: {
      enabled: false,
      items: [
        { name: '', weight: 50, content: '' },
        { name: '', weight: 50, content: '' },
      ],
      test: { enabled: false, samplePercent: 20, decideAfterMinutes: 120 },
    },
  }
}

/** Shares for `n` versions that add up to 100 (the first ones take the remainder). */
export function evenWeights(n: number): number[] {
  const base = Math.floor(100 / n)
  return Array.from({ length: n }, (_, i) => base + (i < 100 - base * n ? 1 : 0))
}

/** The audience filter the draft describes (what the estimate and the task both take). */
export function audienceOf(draft: BroadcastDraft): Schemas['Audience'] {
  if (draft.audienceMode === 'segment') return { segment_id: draft.segmentId ?? null }
  return {
    filter: {
      instance_ids: draft.instanceIds,
      tags_any: draft.tagsAny,
      tags_all: draft.tagsAll,
      contact_type: draft.contactType ?? null,
      q: draft.keyword.trim() || null,
    },
  }
}

/** The estimate request for the draft's audience and rate. */
export function estimateOf(draft: BroadcastDraft): Schemas['EstimateInput'] {
  return { audience: audienceOf(draft), rate_per_minute: draft.ratePerMinute ?? null }
}

/** The task the draft creates. Checks are the API's: it answers with the fields at fault. */
export function taskInputOf(draft: BroadcastDraft): Schemas['TaskInput'] {
  const input: Schemas['TaskInput'] = {
    name: draft.name.trim(),
    task_type: 'broadcast',
    channel: draft.channel,
    audience: audienceOf(draft),
    rate_per_minute: draft.ratePerMinute ?? null,
  }
  if (draft.variants.enabled && draft.channel === 'direct') {
    input.variants = draft.variants.items.map((v) => ({ name: v.name.trim() || null, weight: v.weight, content: v.content }))
    if (draft.variants.test.enabled) {
      input.variant_test = {
        sample_percent: draft.variants.test.samplePercent,
        decide_after_minutes: draft.variants.test.decideAfterMinutes,
      }
    }
  } else if (draft.templateId !== undefined) {
    input.template_id = draft.templateId
    input.variables = { ...draft.variables }
  } else {
    input.message_type = 'text'
    input.content = draft.content
  }
  if (draft.when === 'at') input.scheduled_time = draft.scheduledTime ?? null
  if (draft.when === 'cron') {
    input.cron = draft.cron.trim()
    input.timezone = draft.timezone
  }
  if (draft.quietHours.enabled) {
    input.quiet_hours = { start: draft.quietHours.start, end: draft.quietHours.end, timezone: draft.timezone }
  }
  if (draft.frequencyCap.enabled) {
    input.frequency_cap = { max: draft.frequencyCap.max, window_hours: draft.frequencyCap.windowHours }
  }
  return input
}

/**
 * The channel that fits the chosen instances: a customer mass message when every one is a WeCom
 * app, one-to-one chats otherwise (agents send directly; WeCom apps cannot).
 */
export function channelFor(kinds: Schemas['InstanceKind'][]): BroadcastDraft['channel'] {
  return kinds.length > 0 && kinds.every((kind) => kind === 'wecom') ? 'customer_mass' : 'direct'
}

/** The wizard step (0–3) a field the API refused belongs to, to send the operator back there. */
export function stepOfField(field: string): number {
  if (field.startsWith('audience') || field === 'channel') return 0
  if (['template_id', 'variables', 'content', 'message_type', 'payload', 'variant'].some((f) => field.startsWith(f))) return 1
  if (field === 'name') return 3
  return 2
}
