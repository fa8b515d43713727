import { expect, test, type Page } from '@playwright/test'

import { adminPassword, Api, simFaults, simUrl } from './api'
import { expectAccessible, screenshot, signIn, watchPolicy } from './support'

async function openMenu(page: Page, name: string) {
  await page.getByRole('link', { name, exact: true }).click()
  await expect(page.getByRole('heading', { name, exact: true })).toBeVisible()
}

test('alert rules: create one with a signed webhook, find it, edit, disable and delete it', async ({ page }) => {
  const violations = watchPolicy(page)
  const name = `延迟告警-${Date.now()}`
  await signIn(page, 'admin', adminPassword)
  await openMenu(page, '告警规则')

  await page.getByRole('button', { name: '新建规则' }).click()
  const form = page.getByRole('dialog', { name: '新建规则' })
  await form.getByLabel('名称', { exact: true }).fill(name)
  await form.locator('label').filter({ hasText: '指标阈值' }).click()
  await form.locator('label').filter({ hasText: /^>=$/ }).click()
  await form.getByLabel('阈值', { exact: true }).fill('800')
  await form.locator('label').filter({ hasText: /^严重$/ }).click()
  await form.getByRole('button', { name: '添加渠道' }).click()
  const channel = form.getByTestId('channel-1')
  await channel.getByLabel('渠道 1 类型').selectOption('webhook')
  // A private address is refused by the outbound policy, beside the field that holds it.
  await channel.getByLabel('Webhook 地址').fill('http://10.20.30.40/hook')
  await channel.getByLabel('签名密钥（可选）').fill('e2e-signing-key')
  await form.getByRole('button', { name: '保存' }).click()
  await expect(channel.locator('.el-form-item__error')).toBeVisible()
  await expectAccessible(page)
  await channel.getByLabel('Webhook 地址').fill(`${simUrl}/alert-hook`)
  await form.getByRole('button', { name: '保存' }).click()
  await expect(form).toBeHidden()

  const row = page.getByTestId('alert-rules').getByRole('row', { name: new RegExp(name) })
  await expect(row).toContainText('heartbeat_latency_ms 的 300 秒平均值 >= 800')
  await expect(row).toContainText('Webhook · http://127.0.0.1')
  await expect(row).toContainText('已设置密钥')
  await expect(row).toContainText('严重')
  await expectAccessible(page)
  await screenshot(page, 'alert-rules')

  // The sealed channel is shown as set and kept unless typed again.
  await row.getByRole('button', { name: '编辑' }).click()
  const edit = page.getByRole('dialog', { name: '编辑规则' })
  await expect(edit.getByText('已设置密钥')).toBeVisible()
  await expect(edit.getByRole('button', { name: '重新填写渠道' })).toBeVisible()
  await edit.getByLabel('阈值', { exact: true }).fill('900')
  await edit.locator('label').filter({ hasText: /^警告$/ }).click()
  await expectAccessible(page)
  await edit.getByRole('button', { name: '保存' }).click()
  await expect(edit).toBeHidden()
  await expect(row).toContainText('>= 900')
  await expect(row).toContainText('警告')
  await expect(row).toContainText('已设置密钥')

  await row.getByRole('button', { name: '停用' }).click()
  await expect(row).toContainText('已停用')
  await expect(row.getByRole('button', { name: '启用' })).toBeVisible()

  await row.getByRole('button', { name: '删除' }).click()
  await page.getByRole('dialog').getByRole('button', { name: '确认' }).click()
  await expect(row).toHaveCount(0)
  expect(violations).toEqual([])
})

test('an instance goes offline: its alert fires, is acknowledged and resolved with comments', async ({ page }) => {
  const violations = watchPolicy(page)
  const api = await Api.signIn()
  const name = `alerts-e2e-${Date.now()}`
  const instanceId = await api.simInstance(name)
  // Heartbeats every 5 s, alerts evaluated every 15 s (the default): one missed beat fires it.
  await api.call('POST', '/api/v1/alert-rules', { name: `${name} 掉线`, rule_type: 'heartbeat_missing', threshold: 1, instance_id: instanceId, level: 'CRITICAL' })
  await simFaults({ offline: true })
  try {
    await signIn(page, 'admin', adminPassword)
    await openMenu(page, '告警')
    const title = `Instance ${name} missed its heartbeats`
    const row = page.getByTestId('alerts').getByRole('row', { name: new RegExp(title) })
    await expect(async () => {
      await page.getByRole('button', { name: '刷新' }).click()
      await expect(row).toBeVisible({ timeout: 2_000 })
    }).toPass({ timeout: 60_000, intervals: [2_000] })
    await expect(row).toContainText('未处理')
    await expect(row).toContainText('严重')
    await expectAccessible(page)
    await screenshot(page, 'alerts')

    await row.getByRole('button', { name: title, exact: true }).click()
    const detail = page.getByRole('dialog', { name: title })
    await expect(detail.getByTestId('alert-status')).toHaveText('未处理')
    await expect(detail).toContainText(`${name} 掉线`)
    await detail.getByLabel('备注').fill('值班已接手')
    await detail.getByRole('button', { name: '确认告警' }).click()
    await expect(detail.getByTestId('alert-status')).toHaveText('已确认')
    await expect(detail).toContainText('admin（我） 确认')
    await expect(detail).toContainText('值班已接手')
    await expectAccessible(page)

    await detail.getByLabel('备注').fill('代理已重启')
    await detail.getByRole('button', { name: '解决' }).click()
    await expect(detail.getByTestId('alert-status')).toHaveText('已解决')
    await expect(detail).toContainText('admin（我） 解决')
    await expect(detail).toContainText('代理已重启')
    await expect(detail.getByRole('button', { name: '解决' })).toHaveCount(0)
    await detail.getByRole('button', { name: /关闭|Close/ }).click()

    await page.locator('label').filter({ hasText: /^已解决$/ }).click()
    await expect(page).toHaveURL(/status=RESOLVED/)
    await expect(row).toContainText('已解决')
  } finally {
    await simFaults({})
  }
  expect(violations).toEqual([])
})

test('log search finds the audit and access lines of a rule the test created', async ({ page }) => {
  const violations = watchPolicy(page)
  const api = await Api.signIn()
  const name = `log-e2e-${Date.now()}`
  await api.call('POST', '/api/v1/alert-rules', { name, rule_type: 'instance_error' })
  await signIn(page, 'admin', adminPassword)
  await openMenu(page, '日志查询')
  await expect(page.getByTestId('log-source')).toHaveText('数据来源：sql')

  await page.getByLabel('类型', { exact: true }).selectOption('audit')
  await page.getByLabel('关键词').fill(name)
  await page.getByRole('button', { name: '搜索' }).click()
  const line = page.getByTestId('logs').getByRole('row', { name: new RegExp(`alert_rule.create alert_rule ${name} SUCCESS`) })
  await expect(line).toBeVisible()
  await line.getByRole('button', { name: '展开当前行' }).click()
  await expect(page.getByText('完整 JSON')).toBeVisible()
  await expect(page.getByLabel('上下文')).toContainText('"new_values"')
  await expectAccessible(page)
  await screenshot(page, 'logs')

  // Access lines are shipped in batches: search again until the POST is there.
  await page.getByLabel('类型', { exact: true }).selectOption('access')
  await page.getByLabel('关键词').fill('/api/v1/alert-rules')
  const access = page.getByTestId('logs').getByRole('row', { name: /POST \/api\/v1\/alert-rules 201/ }).first()
  await expect(async () => {
    await page.getByRole('button', { name: '搜索' }).click()
    await expect(access).toBeVisible({ timeout: 2_000 })
  }).toPass({ timeout: 30_000, intervals: [1_000] })

  // A refused search says why.
  await page.getByRole('button', { name: '重置' }).click()
  await page.getByLabel('开始时间').fill('2030-01-02T00:00')
  await page.getByLabel('结束时间').fill('2030-01-01T00:00')
  await page.getByRole('button', { name: '搜索' }).click()
  await expect(page.getByTestId('log-error')).toContainText('to')
  expect(violations).toEqual([])
})
