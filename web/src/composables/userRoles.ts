import { ref, shallowRef } from 'vue'

import { api, ok, type Schemas } from '../api/client'
import { useSession } from '../stores/session'
import { notifyError } from '../util/notify'

/**
 * The roles an admin can grant, for the user forms and the list's role filter. Roles are a short
 * list (tens), so one page of 200 holds them all. Without `roles:read` the list stays empty and
 * `allowed` says why.
 */
export function useRoleCatalogue() {
  const session = useSession()
  const roles = shallowRef<Schemas['RoleView'][]>([])
  const loading = ref(false)
  const allowed = session.can('roles:read')

  async function load() {
    if (!allowed) return
    loading.value = true
    try {
      roles.value = (await ok(api.GET('/api/v1/roles', { params: { query: { limit: 200 } } }))).items
    } catch (error) {
      notifyError(error)
    } finally {
      loading.value = false
    }
  }

  return { roles, loading, allowed, load }
}
