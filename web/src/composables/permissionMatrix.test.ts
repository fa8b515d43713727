import { describe, expect, it } from 'vitest'

import { permissionMatrix } from './permissionMatrix'

const p = (module: string, resource: string, action: string) => ({
  module,
  resource,
  action,
  name: `${resource}:${action}`,
  display_name: `${resource} ${action}`,
})

describe('permissionMatrix', () => {
  it('puts each resource on a row and the usual actions first', () => {
    const { rows, actions } = permissionMatrix([
      p('messaging', 'tasks', 'control'),
      p('messaging', 'tasks', 'read'),
      p('system', 'users', 'delete'),
      p('messaging', 'tasks', 'create'),
      p('system', 'users', 'read'),
    ])
    expect(actions).toEqual(['read', 'create', 'delete', 'control'])
    expect(rows.map((r) => r.resource)).toEqual(['tasks', 'users'])
    expect(rows[0]!.actions).toEqual({ control: 'tasks:control', read: 'tasks:read', create: 'tasks:create' })
    expect(rows[1]!.actions.create).toBeUndefined()
  })
})
