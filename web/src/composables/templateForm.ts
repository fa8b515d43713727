// The template editor's form and its mapping to the API's `TemplateInput` / `TemplatePatch`.
// Checks are the API's (it answers with the fields at fault); this only shapes the data.
import type { Schemas } from '../api/client'

export type MessageType = Schemas['MessageType']
export type VariableType = Schemas['VariableType']
export type VariableValue = string | number | boolean

export const MESSAGE_TYPES: MessageType[] = ['text', 'image', 'link', 'file', 'miniprogram']
export const VARIABLE_TYPES: VariableType[] = ['string', 'number', 'boolean', 'date']

/** The payload keys each message type carries (`required` as the API checks them). */
export const PAYLOAD_FIELDS: Record<MessageType, { key: string; required: boolean }[]> = {
  text: [],
  image: [{ key: 'media_id', required: true }],
  file: [{ key: 'media_id', required: true }],
  link: [
    { key: 'title', required: true },
    { key: 'url', required: true },
    { key: 'description', required: false },
    { key: 'picurl', required: false },
  ],
  miniprogram: [
    { key: 'appid', required: true },
    { key: 'page', required: true },
    { key: 'title', required: true },
    { key: 'pic_media_id', required: false },
  ],
}

/** One declared variable as edited; `key` only tells rows apart for Vue. */
export interface VariableRow {
  key: number
  name: string
  type: VariableType
  required: boolean
  /** `null`: no default. */
  default: VariableValue | null
  description: string
}

export interface TemplateForm {
  name: string
  category: string
  messageType: MessageType
  content: string
  /** The known payload keys of the message type, as typed. */
  payload: Record<string, string>
  /** Payload keys the form has no field for (set by another client): kept as they are. */
  payloadExtra: Record<string, unknown>
  variables: VariableRow[]
  isPublic: boolean
  /** Comma-separated. */
  tags: string
}

let rowKeys = 0

export function newRow(): VariableRow {
  return { key: ++rowKeys, name: '', type: 'string', required: false, default: null, description: '' }
}

export function emptyForm(): TemplateForm {
  return {
    name: '',
    category: '',
    messageType: 'text',
    content: '',
    payload: {},
    payloadExtra: {},
    variables: [],
    isPublic: false,
    tags: '',
  }
}

/** A value of the right type for `type`, or `null` (a default kept across a type change if it fits). */
export function coerceValue(type: VariableType, value: unknown): VariableValue | null {
  if (value === null || value === undefined || value === '') return null
  switch (type) {
    case 'number':
      return typeof value === 'number' && Number.isFinite(value) ? value : null
    case 'boolean':
      return typeof value === 'boolean' ? value : null
    case 'date':
      return typeof value === 'string' && /^\d{4}-\d{2}-\d{2}$/.test(value) ? value : null
    default:
      return typeof value === 'string' ? value : null
  }
}

export function formOf(view: Schemas['TemplateView']): TemplateForm {
  const known = new Set(PAYLOAD_FIELDS[view.message_type].map((f) => f.key))
  const payload: Record<string, string> = {}
  const payloadExtra: Record<string, unknown> = {}
  for (const [key, value] of Object.entries(view.payload ?? {})) {
    if (known.has(key) && typeof value === 'string') payload[key] = value
    else payloadExtra[key] = value
  }
  return {
    name: view.name,
    category: view.category ?? '',
    messageType: view.message_type,
    content: view.content,
    payload,
    payloadExtra,
    variables: view.variables.map((spec) => ({
      key: ++rowKeys,
      name: spec.name,
      type: spec.type ?? 'string',
      required: spec.required ?? false,
      // Shown as stored, even if of another type: the API names a wrong default on save.
      default: (spec.default ?? null) as VariableValue | null,
      description: spec.description ?? '',
    })),
    isPublic: view.is_public,
    tags: (view.tags ?? []).join(', '),
  }
}

export function specOf(row: VariableRow): Schemas['VariableSpec'] {
  const spec: Schemas['VariableSpec'] = { name: row.name.trim(), type: row.type, required: row.required }
  if (row.default !== null && row.default !== '') spec.default = row.default
  if (row.description.trim()) spec.description = row.description.trim()
  return spec
}

/** The payload to store: `null` for text, else the typed keys (blank ones left out) and the kept ones. */
export function payloadOf(form: TemplateForm): Record<string, unknown> | null {
  if (form.messageType === 'text') return null
  const payload: Record<string, unknown> = { ...form.payloadExtra }
  for (const { key } of PAYLOAD_FIELDS[form.messageType]) {
    const value = form.payload[key]?.trim()
    if (value) payload[key] = value
  }
  return payload
}

/** `a, b，c` → `['a', 'b', 'c']`: trimmed, no blanks, no repeats. */
export function tagsOf(text: string): string[] {
  return [...new Set(text.split(/[,，]/).map((t) => t.trim()).filter(Boolean))]
}

export function inputOf(form: TemplateForm): Schemas['TemplateInput'] {
  return {
    name: form.name.trim(),
    category: form.category.trim() || null,
    message_type: form.messageType,
    content: form.content,
    payload: payloadOf(form),
    variables: form.variables.map(specOf),
    is_public: form.isPublic,
    tags: tagsOf(form.tags),
  }
}

/** Every editable field (the type cannot change once saved). */
export function patchOf(form: TemplateForm): Schemas['TemplatePatch'] {
  const { message_type: _type, ...patch } = inputOf(form)
  return patch
}

/** What the server renders of the form (`POST /api/v1/templates/preview`), saved or not: the
 * same content, payload and variables a save would send, so the preview is checked as a save is. */
export type TemplateDraft = Pick<Schemas['DraftPreview'], 'message_type' | 'content' | 'payload' | 'variables'>

export function draftOf(form: TemplateForm): TemplateDraft {
  return { message_type: form.messageType, content: form.content, payload: payloadOf(form), variables: form.variables.map(specOf) }
}

/** Nothing typed yet that a render would show: no text and no attachment field. */
export function isBlankDraft(draft: TemplateDraft): boolean {
  return !draft.content.trim() && Object.keys(draft.payload ?? {}).length === 0
}
