import { expect, test } from '@playwright/test'

import { adminPassword, Api, simFaults, simUrl } from './api'
import { expectAccessible, screenshot, signIn, watchPolicy } from './support'
import { nextStep, totp } from './totp'

test('sign in, find your way in Chinese and English, sign out', async ({ page }) => {
  const violations = watchPolicy(page)
  await signIn(page, 'admin', adminPassword)
  await expect(page.getByRole('heading', { name: '今日概览' })).toBeVisible()
  await expectAccessible(page)
  await screenshot(page, 'home')

  for (const [menu, heading] of [
    ['消息任务', '消息任务'],
    ['客户', '客户'],
    ['实例', '实例'],
    ['用户', '用户'],
    ['角色', '角色与权限'],
    ['审计日志', '审计日志'],
  ]) {
    await page.getByRole('link', { name: menu, exact: true }).click()
    await expect(page.getByRole('heading', { name: heading, exact: true })).toBeVisible()
    await expectAccessible(page)
  }

  await page.getByRole('button', { name: 'English' }).click()
  await expect(page.getByRole('heading', { name: 'Audit log' })).toBeVisible()
  await expect(page.locator('html')).toHaveAttribute('lang', 'en')
  await page.getByRole('button', { name: '简体中文' }).click()
  await expect(page.getByRole('heading', { name: '审计日志' })).toBeVisible()

  await page.getByTestId('user-menu').click()
  await page.getByRole('menuitem', { name: '退出登录' }).click()
  await expect(page).toHaveURL(/\/sign-in/)
  await page.goto('/tasks')
  await expect(page).toHaveURL(/\/sign-in\?next=/)
  expect(violations).toEqual([])
})

test('a broadcast built in the wizard runs live on its task page: pause, resume, finish, report', async ({ page }) => {
  const violations = watchPolicy(page)
  const api = await Api.signIn()
  const instanceName = `console-e2e-${Date.now()}`
  await api.simInstance(instanceName)
  await simFaults({ latency_ms_min: 40, latency_ms_max: 80 })

  await signIn(page, 'admin', adminPassword)
  await page.getByRole('link', { name: '消息任务', exact: true }).click()
  await page.getByRole('link', { name: '新建群发' }).click()
  await expect(page.getByRole('heading', { name: '新建群发' })).toBeVisible()
  // Element Plus draws its own box over a hidden input: click the label, as a user does.
  await page.locator('label').filter({ hasText: instanceName }).click()
  await expect(page.getByRole('checkbox', { name: instanceName })).toBeChecked()
  // The sim has 2 accounts of 40 contacts each: the live estimate counts them.
  await expect(page.getByTestId('estimate-sendable')).toContainText('80')
  await expectAccessible(page)
  await screenshot(page, 'broadcast-wizard')
  await page.getByRole('button', { name: '下一步' }).click()
  await page.getByRole('textbox', { name: '消息文本' }).fill('{{ nickname }}，周末特惠')
  await page.getByRole('button', { name: '下一步' }).click()
  // The sim takes any rate; 20 a minute per account (the default) would make the test wait.
  await page.getByRole('spinbutton', { name: '每分钟发送' }).fill('600')
  await page.getByRole('button', { name: '下一步' }).click()
  await page.getByRole('textbox', { name: '任务名称' }).fill('周末特惠群发')
  await page.getByRole('button', { name: '创建任务' }).click()

  await expect(page).toHaveURL(/\/tasks\/\d+$/)
  await expect(page.getByText('周末特惠群发')).toBeVisible()
  await expect(page.getByText('实时')).toBeVisible()
  await screenshot(page, 'task-detail')

  await page.getByRole('button', { name: '暂停' }).click()
  await expect(page.getByText('已暂停').first()).toBeVisible()
  const pausedAt = await page.getByTestId('task-counts').textContent()
  await page.waitForTimeout(1500)
  expect(await page.getByTestId('task-counts').textContent()).toBe(pausedAt)

  await simFaults({ latency_ms_min: 0, latency_ms_max: 0 })
  await page.getByRole('button', { name: '恢复' }).click()
  await expect(page.getByText('已完成').first()).toBeVisible({ timeout: 90_000 })
  await expect(page.getByTestId('task-progress')).toContainText('100%')
  await expectAccessible(page)

  const download = page.waitForEvent('download')
  await page.getByText('下载报告 (CSV)').click()
  const report = await download
  expect(report.suggestedFilename()).toMatch(/\.csv$/)
  expect(violations).toEqual([])
})

test('an operator without users:read sees no user admin and is told why', async ({ page }) => {
  const api = await Api.signIn()
  const name = `operator${Date.now()}`
  const password = 'Operator-Passw0rd!'
  await api.userWith(name, password, ['tasks:read', 'contacts:read', 'profile:self'])

  await signIn(page, name, password)
  await expect(page.getByRole('link', { name: '消息任务' })).toBeVisible()
  await expect(page.getByRole('link', { name: '用户', exact: true })).toHaveCount(0)
  await expect(page.getByRole('link', { name: '审计日志' })).toHaveCount(0)
  await page.goto('/users')
  await expect(page.getByRole('alert')).toContainText('users:read')
  await expectAccessible(page)
})

test('turn on two-factor authentication from the profile, then sign in with a code', async ({ page }) => {
  const api = await Api.signIn()
  const name = `twofactor${Date.now()}`
  const password = 'Two-Factor-Passw0rd!'
  await api.userWith(name, password, ['profile:self'])

  await signIn(page, name, password)
  await page.getByTestId('user-menu').click()
  await page.getByRole('menuitem', { name: '个人中心' }).click()
  await expect(page.getByTestId('totp-state')).toHaveText('未开启')
  await page.getByRole('textbox', { name: '当前密码（用于确认身份）' }).fill(password)
  await page.getByRole('button', { name: '开启两步验证' }).click()
  await expect(page.getByRole('img', { name: '两步验证二维码' })).toBeVisible()
  await expectAccessible(page)
  await screenshot(page, 'two-factor')
  const secret = (await page.getByTestId('totp-secret').textContent())!.trim()
  await page.getByRole('textbox', { name: '动态验证码' }).fill(totp(secret))
  await page.getByRole('button', { name: '确认开启' }).click()
  await expect(page.getByTestId('totp-state')).toHaveText('已开启')

  await page.getByTestId('user-menu').click()
  await page.getByRole('menuitem', { name: '退出登录' }).click()
  await page.locator('#login').fill(name)
  await page.locator('#password').fill(password)
  await page.getByRole('button', { name: '登录' }).click()
  await expect(page.getByText('此账号已开启两步验证')).toBeVisible()
  await nextStep()
  await page.locator('#totp').fill(totp(secret))
  await page.getByRole('button', { name: '登录' }).click()
  await expect(page.getByTestId('user-menu')).toHaveText(name)
})

test('ops create an agent instance on the sim, see it online and sync it', async ({ page }) => {
  const violations = watchPolicy(page)
  await signIn(page, 'admin', adminPassword)
  await page.getByRole('link', { name: '实例', exact: true }).click()
  await page.getByRole('button', { name: '新建实例' }).click()
  const name = `sim-agent-${Date.now()}`
  const dialog = page.getByRole('dialog')
  await dialog.getByRole('textbox', { name: '名称' }).fill(name)
  await dialog.getByRole('textbox', { name: '接口地址' }).fill(`${simUrl}/agent`)
  await dialog.getByRole('textbox', { name: '代理密钥' }).fill('sim-agent-secret')
  await dialog.getByRole('spinbutton', { name: '心跳间隔（秒）' }).fill('2')
  await expectAccessible(page)
  await dialog.getByRole('button', { name: '保存' }).click()

  const row = page.getByRole('row').filter({ hasText: name })
  await expect(row).toBeVisible()
  await row.getByRole('button', { name: '立即检查' }).click()
  await expect(row.getByText('在线')).toBeVisible()
  await row.getByRole('button', { name: '同步' }).click()
  await expect(row.getByText('同步完成')).toBeVisible({ timeout: 60_000 })
  await expect(row).toContainText('2 个账号，80 个客户')
  await screenshot(page, 'instances')
  expect(violations).toEqual([])
})

test('an admin creates a role, grants it permissions and finds it in the audit log', async ({ page }) => {
  await signIn(page, 'admin', adminPassword)
  await page.getByRole('link', { name: '角色', exact: true }).click()
  await page.getByRole('button', { name: '新建角色' }).click()
  const key = `campaign_${Date.now()}`
  const dialog = page.getByRole('dialog')
  await dialog.getByRole('textbox', { name: '标识' }).fill(key)
  await dialog.getByRole('textbox', { name: '名称' }).fill('活动运营')
  await dialog.getByRole('button', { name: '保存' }).click()
  await expect(page.getByRole('table', { name: '「活动运营」的权限' })).toBeVisible()
  await page.getByRole('checkbox', { name: 'tasks:read' }).check()
  await page.getByRole('checkbox', { name: 'tasks:create' }).check()
  await page.getByRole('button', { name: '保存' }).click()
  await expect(page.getByText('操作成功')).toBeVisible()
  await expectAccessible(page)
  await screenshot(page, 'roles')

  await page.getByRole('link', { name: '审计日志' }).click()
  await page.getByRole('textbox', { name: '操作' }).fill('role.create')
  await page.getByRole('button', { name: '搜索' }).click()
  await expect(page.getByRole('row').filter({ hasText: key }).filter({ hasText: 'role.create' })).toBeVisible()
})

test('import a spreadsheet with bad rows, read the errors, then import it fixed', async ({ page }) => {
  await (await Api.signIn()).simInstance(`import-${Date.now()}`)
  await signIn(page, 'admin', adminPassword)
  await page.getByRole('link', { name: '客户', exact: true }).click()
  await page.getByRole('button', { name: '导入客户' }).click()
  const dialog = page.getByRole('dialog')
  await dialog.getByRole('combobox', { name: '所属账号' }).selectOption({ index: 0 })
  const bad = 'wxid,nickname,phone,gender\nwx_import_1,张三,13800000000,male\n,没有 wxid,,\nwx_import_3,李四,not-a-phone,robot\n'
  await dialog.getByTestId('import-file').setInputFiles({ name: 'contacts.csv', mimeType: 'text/csv', buffer: Buffer.from(bad) })
  await dialog.getByRole('button', { name: '上传并导入' }).click()
  const errors = dialog.getByTestId('import-errors')
  await expect(errors).toBeVisible()
  await expect(errors).toContainText('wxid')
  await expect(errors.getByRole('row').filter({ hasText: 'phone' })).toContainText('4')
  await expectAccessible(page)
  await screenshot(page, 'contacts-import')

  const good = 'wxid,nickname,phone,gender,tags\nwx_import_1,张三,13800000000,male,导入客户\nwx_import_3,李四,13900000000,female,导入客户\n'
  await dialog.getByTestId('import-file').setInputFiles({ name: 'contacts.csv', mimeType: 'text/csv', buffer: Buffer.from(good) })
  await dialog.getByRole('button', { name: '上传并导入' }).click()
  await expect(dialog.getByText('已导入 2 行')).toBeVisible()
})
