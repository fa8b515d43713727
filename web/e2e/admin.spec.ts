import { expect, test } from '@playwright/test'

import { adminPassword, Api, base } from './api'
import { expectAccessible, screenshot, signIn, watchPolicy } from './support'
import { totp } from './totp'

// One user's life as an administrator sees it: created with a role that lapses tomorrow, signed
// in elsewhere with only what that role allows, two-factor reset, signed out remotely, granted a
// second role, then found in the sign-in history and the audit log's before → after view.
test('an admin creates a user with an expiring role, resets their 2FA, signs them out and audits the role change', async ({ page, browser }) => {
  const violations = watchPolicy(page)
  const api = await Api.signIn()
  const stamp = Date.now()
  const username = `temp.${stamp}`
  const password = 'Temp-User-Passw0rd!'
  const reader = `任务只读${stamp}`
  const contacts = `客户只读${stamp}`
  await api.call('POST', '/api/v1/roles', { name: `reader_${stamp}`, display_name: reader, permissions: ['tasks:read', 'profile:self'] })
  await api.call('POST', '/api/v1/roles', { name: `contacts_${stamp}`, display_name: contacts, permissions: ['contacts:read'] })
  // The day the grant lapses, as the page shows it (zh-CN, the browser's Asia/Shanghai).
  const tomorrow = new Intl.DateTimeFormat('zh-CN', { timeZone: 'Asia/Shanghai', dateStyle: 'short' }).format(new Date(stamp + 86_400_000))

  await test.step('create the user with a role that expires tomorrow', async () => {
    await signIn(page, 'admin', adminPassword)
    await page.getByRole('link', { name: '用户', exact: true }).click()
    await expect(page.getByRole('heading', { name: '用户', exact: true })).toBeVisible()
    await page.getByRole('button', { name: '新建用户' }).click()
    const dialog = page.getByRole('dialog', { name: '新建用户' })
    await dialog.getByRole('textbox', { name: '用户名', exact: true }).fill(username)
    await dialog.getByLabel('密码（12 位以上', { exact: false }).fill('short')
    await dialog.getByLabel('再次输入密码').fill('short')
    await dialog.getByRole('button', { name: `「${reader}」明天到期` }).click()
    await expect(dialog.getByRole('checkbox', { name: reader })).toBeChecked()
    await dialog.getByRole('button', { name: '保存' }).click()
    // The API's password rule, beside the field.
    await expect(dialog.getByText('must be at least 12 characters')).toBeVisible()
    await expectAccessible(page)
    await dialog.getByLabel('密码（12 位以上', { exact: false }).fill(password)
    await dialog.getByLabel('再次输入密码').fill(password)
    await dialog.getByRole('button', { name: '保存' }).click()
    await expect(dialog).toBeHidden()
    const row = page.getByRole('row').filter({ hasText: username })
    await expect(row).toContainText(reader)
    await expect(row).toContainText(`至 ${tomorrow}`)
    await expectAccessible(page)
    await screenshot(page, 'users')
  })

  await test.step('the user turns two-factor on (through the API), the admin resets it', async () => {
    const theirs = await Api.signIn(username, password)
    const enrollment = await theirs.call<{ secret: string }>('POST', '/api/v1/auth/totp/enroll', { current_password: password })
    await theirs.call('POST', '/api/v1/auth/totp/confirm', { code: totp(enrollment.secret) })

    await page.getByRole('row').filter({ hasText: username }).getByRole('button', { name: '详情' }).click()
    const drawer = page.getByTestId('user-drawer')
    await drawer.getByRole('tab', { name: '安全' }).click()
    await expect(drawer.getByTestId('user-totp')).toHaveText('已开启')
    await drawer.getByRole('button', { name: '重置两步验证' }).click()
    await page.getByRole('dialog', { name: '重置两步验证' }).getByRole('button', { name: '确认' }).click()
    await expect(drawer.getByTestId('user-totp')).toHaveText('未开启')
    await expectAccessible(page)
  })

  const other = await browser.newContext({ baseURL: base, locale: 'zh-CN', timezoneId: 'Asia/Shanghai', viewport: { width: 1440, height: 900 } })
  const theirPage = await other.newPage()
  await test.step('signed in elsewhere, the user sees only what the role allows', async () => {
    // With two-factor reset, the password alone signs them in.
    await signIn(theirPage, username, password)
    await expect(theirPage.getByRole('link', { name: '消息任务', exact: true })).toBeVisible()
    await expect(theirPage.getByRole('link', { name: '客户', exact: true })).toHaveCount(0)
    await expect(theirPage.getByRole('link', { name: '用户', exact: true })).toHaveCount(0)
    await expect(theirPage.getByRole('link', { name: '审计日志', exact: true })).toHaveCount(0)
  })

  await test.step('the admin revokes their session; their next call sends them to sign-in', async () => {
    const drawer = page.getByTestId('user-drawer')
    await drawer.getByRole('tab', { name: '会话' }).click()
    const sessions = drawer.getByTestId('user-sessions')
    await drawer.getByRole('button', { name: '刷新' }).click()
    await expect(sessions.locator('tbody tr')).toHaveCount(1)
    await drawer.getByRole('button', { name: '注销全部会话' }).click()
    await page.getByRole('dialog', { name: '注销全部会话' }).getByRole('button', { name: '确认' }).click()
    await expect(sessions).toContainText('没有活动的会话')

    await theirPage.getByRole('link', { name: '消息任务', exact: true }).click()
    await expect(theirPage).toHaveURL(/\/sign-in/)
    await other.close()
  })

  await test.step('grant a second role, then find their sign-in in the history', async () => {
    const drawer = page.getByTestId('user-drawer')
    await drawer.getByRole('tab', { name: '角色' }).click()
    await drawer.getByRole('checkbox', { name: contacts }).check()
    await drawer.getByRole('button', { name: '保存' }).click()
    await expect(drawer.getByTestId('user-roles')).toContainText(contacts)
    // The list behind the drawer follows.
    await expect(page.locator('.el-table__row').filter({ hasText: username })).toContainText(contacts)

    await drawer.getByRole('tab', { name: '资料' }).click()
    await drawer.getByRole('link', { name: '登录记录' }).click()
    await expect(page.getByRole('heading', { name: '登录记录' })).toBeVisible()
    await expect(page.getByRole('textbox', { name: '用户名' })).toHaveValue(username)
    await expect(page.getByRole('row').filter({ hasText: username }).filter({ hasText: '成功' }).first()).toBeVisible()
    await page.getByRole('combobox', { name: '结果' }).selectOption('failure')
    await page.getByRole('button', { name: '搜索' }).click()
    await expect(page.getByText('暂无数据')).toBeVisible()
    await page.getByRole('combobox', { name: '结果' }).selectOption('success')
    await page.getByRole('button', { name: '搜索' }).click()
    await expect(page.getByRole('row').filter({ hasText: username }).first()).toBeVisible()
    await expectAccessible(page)
    await screenshot(page, 'login-logs')
  })

  await test.step('read the role change in the audit log, before → after', async () => {
    await page.getByRole('link', { name: '审计日志' }).click()
    await page.getByRole('textbox', { name: '操作' }).fill('user.roles.set')
    await page.getByRole('button', { name: '搜索' }).click()
    const entry = page.getByRole('row').filter({ hasText: username }).filter({ hasText: 'user.roles.set' })
    await expect(page.getByRole('row').filter({ hasText: 'user.create' })).toHaveCount(0)
    await entry.getByRole('button', { name: '查看变更' }).click()
    const dialog = page.getByRole('dialog', { name: '审计详情' })
    const roles = dialog.getByTestId('audit-diff').locator('tr[data-key="roles"]')
    await expect(roles.getByTestId('diff-before')).toContainText(reader)
    await expect(roles.getByTestId('diff-before')).not.toContainText(contacts)
    await expect(roles.getByTestId('diff-after')).toContainText(contacts)
    // Only the roles changed; the rest of the record is folded away until asked for.
    await expect(dialog.getByTestId('audit-diff').locator('tbody tr')).toHaveCount(1)
    const unchanged = dialog.locator('summary')
    await expect(unchanged).toHaveText(/未变更的字段（\d+）/)
    await expect(dialog.getByRole('rowheader', { name: 'username' })).toBeHidden()
    await unchanged.click()
    await expect(dialog.getByRole('rowheader', { name: 'username' })).toBeVisible()
    await expectAccessible(page)
    await screenshot(page, 'audit-diff')
  })
  expect(violations).toEqual([])
})
