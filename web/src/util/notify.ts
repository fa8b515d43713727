import { ElMessage } from 'element-plus'

import { ApiError } from '../api/client'
import { i18n } from '../i18n'

/** Tells the user why something failed, in their language where the reason is ours. */
export function notifyError(error: unknown) {
  const t = i18n.global.t
  let message: string
  if (error instanceof ApiError) {
    message = error.status === 403 ? `${t('errors.forbiddenAction')}: ${error.message}` : error.message
  } else if (error instanceof TypeError) {
    message = t('errors.network')
  } else {
    message = String(error)
  }
  ElMessage({ type: 'error', message, showClose: true })
}

export function notifyDone() {
  ElMessage({ type: 'success', message: i18n.global.t('common.done') })
}

/** Runs one action the user asked for, says it worked or why not, then shows the page afresh. */
export async function act(work: () => Promise<unknown>, reload: () => Promise<unknown>) {
  try {
    await work()
    notifyDone()
  } catch (error) {
    notifyError(error)
  }
  await reload()
}
