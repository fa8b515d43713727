import type { Schemas } from '../api/client'

export interface MatrixRow {
  resource: string
  module: string
  /** action → permission name */
  actions: Record<string, string>
}

/** The permission catalogue as a grid: one row per resource, one column per action. */
export function permissionMatrix(catalogue: Schemas['PermissionView'][]): { rows: MatrixRow[]; actions: string[] } {
  const rows = new Map<string, MatrixRow>()
  const actions: string[] = []
  for (const p of catalogue) {
    const row = rows.get(p.resource) ?? { resource: p.resource, module: p.module, actions: {} }
    row.actions[p.action] = p.name
    rows.set(p.resource, row)
    if (!actions.includes(p.action)) actions.push(p.action)
  }
  const order = ['read', 'create', 'update', 'delete']
  actions.sort((a, b) => (order.indexOf(a) + 1 || 99) - (order.indexOf(b) + 1 || 99) || a.localeCompare(b))
  return { rows: [...rows.values()].sort((a, b) => a.module.localeCompare(b.module) || a.resource.localeCompare(b.resource)), actions }
}
