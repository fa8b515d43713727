// The contact drawer's form and the PATCH it sends: only what changed, so saving a remark never
// rewrites tags or fields someone else edited meanwhile.
import type { Schemas } from '../api/client'
import type { TagChoice } from './contactFilters'
import { fieldsOf, rowsOf, sameFields, type FieldError, type FieldRow } from './contactCustomFields'
import { splitTags, tagText } from './contactTags'

export interface ContactForm {
  remark: string
  /** The local tags (synced ones are read-only and not in the form). */
  tags: TagChoice[]
  fields: FieldRow[]
  isStar: boolean
  isTop: boolean
  isBlocked: boolean
}

export function contactFormOf(contact: Schemas['ContactView'], synced: ReadonlySet<number>): ContactForm {
  return {
    remark: contact.remark ?? '',
    tags: splitTags(contact.tags, synced).local.map((t) => ({ id: t.id, label: tagText(t) })),
    fields: rowsOf(contact.custom_fields),
    isStar: contact.is_star,
    isTop: contact.is_top,
    isBlocked: contact.is_blocked,
  }
}

function sameIds(a: number[], b: number[]): boolean {
  const x = [...a].sort((m, n) => m - n)
  const y = [...b].sort((m, n) => m - n)
  return x.length === y.length && x.every((id, i) => id === y[i])
}

/**
 * What to send for the form; `errors` names custom-field rows that cannot be saved.
 * `editTags` is false when the user cannot see which tags are local (no `tags:read`).
 */
export function contactPatchOf(
  contact: Schemas['ContactView'],
  form: ContactForm,
  synced: ReadonlySet<number>,
  editTags: boolean,
): { patch: Schemas['ContactPatch']; errors: Record<number, FieldError> } {
  const patch: Schemas['ContactPatch'] = {}
  const remark = form.remark.trim()
  if (remark !== (contact.remark ?? '')) patch.remark = remark || null
  if (editTags) {
    const ids = form.tags.map((t) => t.id)
    if (!sameIds(ids, splitTags(contact.tags, synced).local.map((t) => t.id))) patch.tag_ids = ids
  }
  const { fields, errors } = fieldsOf(form.fields)
  if (!Object.keys(errors).length && !sameFields(fields, contact.custom_fields)) patch.custom_fields = fields
  if (form.isStar !== contact.is_star) patch.is_star = form.isStar
  if (form.isTop !== contact.is_top) patch.is_top = form.isTop
  if (form.isBlocked !== contact.is_blocked) patch.is_blocked = form.isBlocked
  return { patch, errors }
}
