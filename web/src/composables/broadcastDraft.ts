import type { Schemas } from '../api/client'

/** What the operator fills in across the wizard's steps. */
export interface BroadcastDraft {
  name: string
  /** `direct`: one chat per receiver through agent instances; `customer_mass`: one WeCom mass
   * message per member, which the member confirms in the WeCom client. */
  channel: 'direct' | 'customer_mass'
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
}

export function emptyDraft(timezone = Intl.DateTimeFormat().resolvedOptions().timeZone): BroadcastDraft {
  return {
    name: '',
    channel: 'direct',
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
  }
}

/** The audience filter the draft describes (what the estimate and the task both take). */
export function audienceOf(draft: BroadcastDraft): Schemas['Audience'] {
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
  if (draft.templateId !== undefined) {
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
  if (['template_id', 'variables', 'content', 'message_type', 'payload'].some((f) => field.startsWith(f))) return 1
  if (field === 'name') return 3
  return 2
}
