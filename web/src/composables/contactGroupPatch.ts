// A group's editable part (local labels and custom fields) and the PATCH for what changed.
import type { Schemas } from '../api/client'
import { fieldsOf, rowsOf, sameFields, type FieldError, type FieldRow } from './contactCustomFields'

export interface GroupForm {
  tags: string[]
  fields: FieldRow[]
}

export function groupFormOf(group: Schemas['GroupView']): GroupForm {
  return { tags: [...(group.tags ?? [])], fields: rowsOf(group.custom_fields) }
}

/** Adds a typed label unless blank or already there; labels are at most 50 characters. */
export function withLabel(labels: string[], typed: string): string[] {
  const label = typed.trim().slice(0, 50)
  return !label || labels.includes(label) ? labels : [...labels, label]
}

export function groupPatchOf(
  group: Schemas['GroupView'],
  form: GroupForm,
): { patch: Schemas['GroupPatch']; errors: Record<number, FieldError> } {
  const patch: Schemas['GroupPatch'] = {}
  const before = group.tags ?? []
  if (form.tags.length !== before.length || form.tags.some((t, i) => t !== before[i])) {
    patch.tags = form.tags.length ? form.tags : null
  }
  const { fields, errors } = fieldsOf(form.fields)
  if (!Object.keys(errors).length && !sameFields(fields, group.custom_fields)) patch.custom_fields = fields
  return { patch, errors }
}
