// A page without a dialog or drawer of its own has not loaded the overlay's styles (components'
// styles load with them): without them the box lands below the page instead of over it.
import 'element-plus/theme-chalk/el-overlay.css'

import { ElMessageBox } from 'element-plus'

import { i18n } from '../i18n'

/** Button words other than the console's 确认 / 取消, when those would read ambiguously. */
export interface ConfirmWords {
  confirm?: string
  cancel?: string
}

/**
 * Asks before an action that signs someone out, stops work or cannot be undone; `true` when the
 * user confirmed. The one way the console asks: a message box opened from script does not see
 * the page's Element Plus locale provider, so its buttons are named here in the console's language.
 */
export async function confirmAction(title: string, message: string, words: ConfirmWords = {}): Promise<boolean> {
  const t = i18n.global.t
  try {
    await ElMessageBox.confirm(message, title, {
      type: 'warning',
      confirmButtonText: words.confirm ?? t('common.confirm'),
      cancelButtonText: words.cancel ?? t('common.cancel'),
    })
    return true
  } catch {
    return false
  }
}
