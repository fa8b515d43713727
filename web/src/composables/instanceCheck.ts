// "Check now": a heartbeat run at once. The answer says whether the instance is online (with
// its latency) or why not, which the user is told in so many words; a refusal is an error.
import { ElMessage } from 'element-plus'

import { api, ok, type Schemas } from '../api/client'
import { i18n } from '../i18n'
import { notifyError } from '../util/notify'

/** Checks the instance and reports the outcome; returns it as it is now, or `null` on a refusal. */
export async function checkInstance(id: number): Promise<Schemas['InstanceView'] | null> {
  const t = i18n.global.t
  try {
    const out = await ok(api.POST('/api/v1/instances/{id}/check', { params: { path: { id } } }))
    if (out.online) ElMessage({ type: 'success', message: t('instances.detail.checkOnline', { ms: out.latency_ms ?? '—' }) })
    else ElMessage({ type: 'error', message: t('instances.detail.checkFailed', { error: out.error ?? '' }), showClose: true })
    return out.instance
  } catch (error) {
    notifyError(error)
    return null
  }
}
