import { expect, test } from '@playwright/test'

import { adminPassword, Api, simConfirmMass, simInbound, simMassMessages } from './api'
import { expectAccessible, screenshot, signIn, watchPolicy } from './support'

test('a customer mass message waits for members: who waits, a reminder, then done once they confirm', async ({ page }) => {
  const violations = watchPolicy(page)
  const api = await Api.signIn()
  const instanceName = `wecom-e2e-${Date.now()}`
  await api.simWecomInstance(instanceName)
  const before = (await simMassMessages()).length

  await signIn(page, 'admin', adminPassword)
  await page.goto('/tasks/new')
  await page.locator('label').filter({ hasText: instanceName }).click()
  // Every chosen instance is a WeCom app: the wizard switches to a customer mass message.
  await expect(page.getByRole('radio', { name: '企业微信客户群发' })).toBeChecked()
  await expect(page.getByTestId('estimate-sendable')).not.toHaveText('0')
  await page.getByRole('button', { name: '下一步' }).click()
  await page.getByRole('textbox', { name: '消息文本' }).fill('年终大促，全场八折')
  await page.getByRole('button', { name: '下一步' }).click()
  await page.getByRole('spinbutton', { name: '每分钟发送' }).fill('600')
  await page.getByRole('button', { name: '下一步' }).click()
  await expect(page.getByRole('cell', { name: '企业微信客户群发' })).toBeVisible()
  await page.getByRole('textbox', { name: '任务名称' }).fill('年终大促客户群发')
  await page.getByRole('button', { name: '创建任务' }).click()

  await expect(page).toHaveURL(/\/tasks\/\d+$/)
  const waiting = page.getByTestId('awaiting-confirmation')
  await expect(waiting).toBeVisible({ timeout: 60_000 })
  await expect(waiting).toContainText('位客户在等待成员确认')
  await expectAccessible(page)
  await screenshot(page, 'task-awaiting')

  await waiting.getByRole('button', { name: '提醒成员确认' }).click()
  await expect(page.getByTestId('remind-report')).toContainText('已提醒')
  await waiting.getByRole('button', { name: '查看待确认客户' }).click()
  await expect(page.getByRole('cell', { name: '待确认' }).first()).toBeVisible()

  // The members confirm in their WeCom clients; the task settles from WeCom's results.
  const mass = (await simMassMessages()).slice(before)
  expect(mass.length).toBeGreaterThan(0)
  for (const m of mass) await simConfirmMass(m.msgid)
  await expect(page.getByText('已完成').first()).toBeVisible({ timeout: 60_000 })
  await expect(waiting).toHaveCount(0)
  await expectAccessible(page)
  expect(violations).toEqual([])
})

test('two tabs share one session: an expired access token is refreshed once and neither tab is signed out', async ({ context }) => {
  const first = await context.newPage()
  await signIn(first, 'admin', adminPassword)
  await first.goto('/contacts')
  await expect(first.getByRole('heading', { name: '客户', exact: true })).toBeVisible()
  const second = await context.newPage()
  await second.goto('/tasks')
  await expect(second.getByRole('heading', { name: '消息任务', exact: true })).toBeVisible()

  let refreshes = 0
  context.on('request', (request) => {
    if (request.url().endsWith('/api/v1/auth/session/refresh')) refreshes++
  })
  // The access token runs out (its cookie goes, as at the end of its max-age) while both tabs
  // are open; both call the API at once. Two refreshes with the same refresh token would look
  // like a stolen token and end the session: the tabs must take turns.
  await context.clearCookies({ name: 'wework_access' })
  await Promise.all([first.getByRole('button', { name: '搜索' }).click(), second.reload()])
  await expect(second.getByRole('heading', { name: '消息任务', exact: true })).toBeVisible()
  await expect(first.getByRole('heading', { name: '客户', exact: true })).toBeVisible()
  await expect(first.getByRole('alert')).toHaveCount(0)
  expect(refreshes).toBe(1)

  // Both tabs go on working on the refreshed session.
  await first.getByRole('link', { name: '消息任务', exact: true }).click()
  await expect(first.getByRole('heading', { name: '消息任务', exact: true })).toBeVisible()
  await second.getByRole('link', { name: '实例', exact: true }).click()
  await expect(second.getByRole('heading', { name: '实例', exact: true })).toBeVisible()
  expect(first.url()).not.toContain('sign-in')
  expect(second.url()).not.toContain('sign-in')
})

test('cancel a scheduled task after confirming in the console\'s language', async ({ page }) => {
  const violations = watchPolicy(page)
  const api = await Api.signIn()
  const name = `取消确认 ${Date.now()}`
  const instanceId = await api.simInstance(`cancel-e2e-${Date.now()}`)
  const contacts = await api.call<{ items: { id: number }[] }>('GET', `/api/v1/contacts?instance_id=${instanceId}&limit=1`)
  const task = await api.call<{ id: number }>('POST', '/api/v1/tasks', {
    name,
    task_type: 'broadcast',
    content: '下周上新',
    audience: { contact_ids: contacts.items.map((c) => c.id) },
    scheduled_time: new Date(Date.now() + 3_600_000).toISOString(),
  })

  await signIn(page, 'admin', adminPassword)
  await page.goto(`/tasks/${task.id}`)
  await expect(page.locator('.page-title')).toHaveText(name)
  // The buttons say what each does, in Chinese: keeping the task changes nothing.
  await page.getByRole('button', { name: '取消任务' }).click()
  const dialog = page.getByRole('dialog', { name: '取消任务' })
  await expect(dialog).toContainText(`确定取消任务「${name}」`)
  await expectAccessible(page)
  await dialog.getByRole('button', { name: '不取消' }).click()
  await expect(dialog).toBeHidden()
  await expect(page.getByText('已计划').first()).toBeVisible()

  await page.getByRole('button', { name: '取消任务' }).click()
  await dialog.getByRole('button', { name: '取消任务' }).click()
  await expect(page.getByText('已取消').first()).toBeVisible()
  await expect(page.getByRole('button', { name: '取消任务' })).toHaveCount(0)
  expect(violations).toEqual([])
})

test('a broadcast shows its results: replies within the window, reply rate and opt-outs', async ({ page }) => {
  const violations = watchPolicy(page)
  const api = await Api.signIn()
  const instanceId = await api.simInstance(`results-e2e-${Date.now()}`)
  const contacts = await api.call<{ items: { id: number; account_id: number; wxid: string }[] }>(
    'GET',
    `/api/v1/contacts?instance_id=${instanceId}&limit=4`,
  )
  const audience = { contact_ids: contacts.items.map((c) => c.id) }
  const task = await api.call<{ id: number }>('POST', '/api/v1/tasks', {
    name: '效果统计群发',
    task_type: 'broadcast',
    content: '周末上新，回复 TD 退订',
    audience,
    rate_per_minute: 6000,
  })
  for (let i = 0; i < 120; i++) {
    const t = await api.call<{ status: string }>('GET', `/api/v1/tasks/${task.id}`)
    if (t.status === 'completed') break
    await new Promise((r) => setTimeout(r, 500))
  }
  const [asks, quits] = contacts.items
  await simInbound(api, instanceId, asks!, '有小码吗？')
  await simInbound(api, instanceId, quits!, 'ＴＤ')

  await signIn(page, 'admin', adminPassword)
  await page.goto(`/tasks/${task.id}`)
  const results = page.getByTestId('task-outcomes')
  await expect(results).toBeVisible()
  await expect(async () => {
    await results.getByRole('button', { name: '刷新效果' }).click()
    await expect(results.getByTestId('outcome-replied')).toHaveText('2 / 4', { timeout: 2000 })
  }).toPass({ timeout: 30_000 })
  await expect(results.getByTestId('outcome-rate')).toHaveText('50.0%')
  await expect(results.getByTestId('outcome-opt-outs')).toHaveText('1')
  await expectAccessible(page)
  await screenshot(page, 'task-results')
  expect(violations).toEqual([])
})
