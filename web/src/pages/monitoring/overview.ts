// The health overview's figures, from `GET /api/v1/monitoring/overview` (counts by status).

/** Statuses shown first, in this order, even at zero; any other the API reports follows. */
export const INSTANCE_ORDER = ['online', 'error', 'offline', 'maintenance']
export const ACCOUNT_ORDER = ['online', 'offline', 'banned']
export const ALERT_ORDER = ['CRITICAL', 'WARNING', 'INFO']
export const TASK_ORDER = ['running', 'scheduled', 'paused', 'awaiting_confirmation', 'failed', 'completed', 'cancelled']

/** `[status, count]` in display order: the known ones (0 when absent), then the rest by name. */
export function breakdown(counts: Record<string, number>, order: string[]): [string, number][] {
  const rest = Object.keys(counts)
    .filter((key) => !order.includes(key))
    .sort()
  return [...order.map((key): [string, number] => [key, counts[key] ?? 0]), ...rest.map((key): [string, number] => [key, counts[key] ?? 0])]
}

export function total(counts: Record<string, number>): number {
  return Object.values(counts).reduce((a, b) => a + b, 0)
}

/** Instances that need a look: in error or offline (maintenance is intended). */
export function needingAttention(instances: Record<string, number>): number {
  return (instances.error ?? 0) + (instances.offline ?? 0)
}
