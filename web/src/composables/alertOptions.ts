// Choices for the alert and log filters and the rule form: instances and alert rules by name.
// One API page (200, the API's largest) of each: a deployment has a handful of instances and
// rules, never a table worth paging through in a drop-down. Without the read permission the
// list stays empty and ids are shown as `#id`.
import { computed, shallowRef } from 'vue'

import { api, ok } from '../api/client'
import { useSession } from '../stores/session'
import { notifyError } from '../util/notify'

export interface Option {
  id: number
  name: string
}

export function useInstanceOptions() {
  const options = shallowRef<Option[]>([])
  const session = useSession()
  const readable = computed(() => session.can('instances:read'))

  async function load() {
    if (!readable.value) return
    try {
      const page = await ok(api.GET('/api/v1/instances', { params: { query: { limit: 200 } } }))
      options.value = page.items.map((i) => ({ id: i.id, name: i.name }))
    } catch (error) {
      notifyError(error)
    }
  }

  return { options, readable, load, nameOf: (id: number | null | undefined) => nameOf(options.value, id) }
}

export function useRuleOptions() {
  const options = shallowRef<Option[]>([])
  const session = useSession()
  const readable = computed(() => session.can('alert_rules:read'))

  async function load() {
    if (!readable.value) return
    try {
      const page = await ok(api.GET('/api/v1/alert-rules', { params: { query: { limit: 200 } } }))
      options.value = page.items.map((r) => ({ id: r.id, name: r.name }))
    } catch (error) {
      notifyError(error)
    }
  }

  return { options, readable, load }
}

export function nameOf(options: Option[], id: number | null | undefined): string {
  if (id === null || id === undefined) return '—'
  return options.find((o) => o.id === id)?.name ?? `#${id}`
}
