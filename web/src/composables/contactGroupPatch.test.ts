import { describe, expect, it } from 'vitest'

import type { Schemas } from '../api/client'
import { groupFormOf, groupPatchOf, withLabel } from './contactGroupPatch'

const group: Schemas['GroupView'] = {
  id: 3,
  instance_id: 1,
  account_id: 1,
  group_wxid: 'wr_1',
  member_count: 4,
  my_role: 'owner',
  is_active: true,
  tags: ['华东'],
  custom_fields: null,
  created_at: '2025-01-01T00:00:00Z',
  updated_at: '2025-01-01T00:00:00Z',
}

describe('the group form', () => {
  it('adds a label once, trimmed and at most 50 characters', () => {
    expect(withLabel(['a'], ' b ')).toEqual(['a', 'b'])
    expect(withLabel(['a'], 'a')).toEqual(['a'])
    expect(withLabel(['a'], '  ')).toEqual(['a'])
    expect(withLabel([], 'x'.repeat(60))).toEqual(['x'.repeat(50)])
  })

  it('sends only what changed', () => {
    expect(groupPatchOf(group, groupFormOf(group))).toEqual({ patch: {}, errors: {} })
    const form = groupFormOf(group)
    form.tags.push('高价值')
    form.fields.push({ key: 'owner', value: '小李', json: false })
    expect(groupPatchOf(group, form).patch).toEqual({ tags: ['华东', '高价值'], custom_fields: { owner: '小李' } })
  })

  it('clears the labels with null', () => {
    const form = groupFormOf(group)
    form.tags = []
    expect(groupPatchOf(group, form).patch).toEqual({ tags: null })
  })
})
