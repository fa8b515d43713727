import { describe, expect, it } from 'vitest'

import { zh } from '../../i18n/sections/tasks'
import { skipReasonText } from './skipReason'

const skip: Record<string, string> = zh.wizard.skip
const translator = {
  t: (key: string) => skip[key.replace('wizard.skip.', '')],
  te: (key: string) => key.replace('wizard.skip.', '') in skip,
}

describe('skipReasonText', () => {
  it('translates the reasons the API gives', () => {
    expect(skipReasonText('unsubscribed', translator)).toBe('已退订')
    expect(skipReasonText('not_friend', translator)).toBe('非好友')
    expect(skipReasonText('cancelled', translator)).toBe('任务已取消')
  })

  it('shows an unknown reason as it is', () => {
    expect(skipReasonText('new_reason', translator)).toBe('new_reason')
  })
})
