import { ElMessageBox } from 'element-plus'

import { i18n } from '../../i18n'

/**
 * Asks before an action that signs someone out or cannot be undone. The buttons are named in the
 * console's language: a message box opened from script does not see the page's locale provider.
 */
export async function confirmAction(title: string, message: string): Promise<boolean> {
  const t = i18n.global.t
  try {
    await ElMessageBox.confirm(message, title, { type: 'warning', confirmButtonText: t('common.confirm'), cancelButtonText: t('common.cancel') })
    return true
  } catch {
    return false
  }
}
