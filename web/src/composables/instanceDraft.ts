// The instance form's data and what it sends: a whole body to create, only the changes to edit.
// Secrets are never shown back by the API (`ConfigEntryView.secret`, `proxy_password_set`), so
// an empty secret field in an edit means "keep the stored one", never "clear it".
import type { Schemas } from '../api/client'

type Kind = Schemas['InstanceKind']
type Instance = Schemas['InstanceView']

/** A configuration field the form offers for a kind of instance. */
export interface ConfigField {
  key: string
  secret: boolean
  numeric?: boolean
}

/** Which configuration entries the form shows, per kind (the API checks them). */
export const CONFIG_FIELDS: Record<Kind, ConfigField[]> = {
  agent: [{ key: 'agent_secret', secret: true }],
  wecom: [
    { key: 'corp_id', secret: false },
    { key: 'corp_secret', secret: true },
    { key: 'agent_id', secret: false, numeric: true },
    { key: 'callback_token', secret: true },
    { key: 'callback_aes_key', secret: true },
    { key: 'robot_key', secret: true },
    { key: 'kf_secret', secret: true },
  ],
}

export interface InstanceDraft {
  name: string
  api_url: string
  description: string
  heartbeat_interval: number
  max_accounts: number
  enabled: boolean
  proxy_host: string
  proxy_port: number | null
  proxy_username: string
  proxy_password: string
  /** Typed values by config key; secrets start empty. */
  config: Record<string, string>
}

export function emptyDraft(): InstanceDraft {
  return {
    name: '',
    api_url: '',
    description: '',
    heartbeat_interval: 30,
    max_accounts: 10,
    enabled: true,
    proxy_host: '',
    proxy_port: null,
    proxy_username: '',
    proxy_password: '',
    config: {},
  }
}

/** The current value of a non-secret config entry as text ('' when absent). */
function plainValue(instance: Instance, key: string): string {
  const entry = instance.config.find((c) => c.key === key)
  if (!entry || entry.secret || entry.value === null || entry.value === undefined) return ''
  return typeof entry.value === 'string' ? entry.value : JSON.stringify(entry.value)
}

/** Whether the instance has a secret stored under `key` (its value is never sent back). */
export function secretSet(instance: Instance, key: string): boolean {
  if (key === 'proxy_password') return instance.proxy_password_set
  return instance.config.some((c) => c.key === key && c.secret)
}

/** The form filled from an instance: plain values shown, secret fields empty. */
export function draftFrom(instance: Instance): InstanceDraft {
  const config: Record<string, string> = {}
  for (const field of CONFIG_FIELDS[instance.kind]) config[field.key] = field.secret ? '' : plainValue(instance, field.key)
  return {
    name: instance.name,
    api_url: instance.api_url ?? '',
    description: instance.description ?? '',
    heartbeat_interval: instance.heartbeat_interval,
    max_accounts: instance.max_accounts,
    enabled: instance.enabled,
    proxy_host: instance.proxy_host ?? '',
    proxy_port: instance.proxy_port ?? null,
    proxy_username: instance.proxy_username ?? '',
    proxy_password: '',
    config,
  }
}

function configValue(field: ConfigField, text: string): unknown {
  return field.numeric && /^\d+$/.test(text.trim()) ? Number(text.trim()) : text
}

/** The `POST /api/v1/instances` body: empty optional fields are left out. */
export function createBody(kind: Kind, draft: InstanceDraft): Schemas['InstanceInput'] {
  const config: Record<string, unknown> = {}
  for (const field of CONFIG_FIELDS[kind]) {
    const text = draft.config[field.key] ?? ''
    if (text !== '') config[field.key] = configValue(field, text)
  }
  return {
    name: draft.name,
    kind,
    api_url: draft.api_url || null,
    description: draft.description || null,
    heartbeat_interval: draft.heartbeat_interval,
    max_accounts: draft.max_accounts,
    enabled: draft.enabled,
    ...(draft.proxy_host ? { proxy_host: draft.proxy_host } : {}),
    ...(draft.proxy_port !== null ? { proxy_port: draft.proxy_port } : {}),
    ...(draft.proxy_username ? { proxy_username: draft.proxy_username } : {}),
    ...(draft.proxy_password ? { proxy_password: draft.proxy_password } : {}),
    config,
  }
}

/**
 * The `PATCH` body: only what differs from `instance`. Secrets go only when a new one was typed;
 * cleared optional texts become `null`. An empty object means there is nothing to save.
 */
export function patchBody(instance: Instance, draft: InstanceDraft): Schemas['InstancePatch'] {
  const before = draftFrom(instance)
  const patch: Schemas['InstancePatch'] = {}
  if (draft.name !== before.name) patch.name = draft.name
  if (draft.api_url !== before.api_url) patch.api_url = draft.api_url
  if (draft.description !== before.description) patch.description = draft.description || null
  if (draft.heartbeat_interval !== before.heartbeat_interval) patch.heartbeat_interval = draft.heartbeat_interval
  if (draft.max_accounts !== before.max_accounts) patch.max_accounts = draft.max_accounts
  if (draft.enabled !== before.enabled) patch.enabled = draft.enabled
  if (draft.proxy_host !== before.proxy_host) patch.proxy_host = draft.proxy_host || null
  if (draft.proxy_port !== before.proxy_port) patch.proxy_port = draft.proxy_port
  if (draft.proxy_username !== before.proxy_username) patch.proxy_username = draft.proxy_username || null
  if (draft.proxy_password) patch.proxy_password = draft.proxy_password
  const config: Record<string, unknown> = {}
  for (const field of CONFIG_FIELDS[instance.kind]) {
    const text = draft.config[field.key] ?? ''
    const changed = field.secret ? text !== '' : text !== '' && text !== before.config[field.key]
    if (changed) config[field.key] = configValue(field, text)
  }
  if (Object.keys(config).length) patch.config = config
  return patch
}
