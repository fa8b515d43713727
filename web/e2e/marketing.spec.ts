import { expect, test } from '@playwright/test'

import { Api, adminPassword, simInbound } from './api'
import { expectAccessible, screenshot, signIn, watchPolicy } from './support'

type Receiver = { contact_id: number; variant: string }
type Contact = { id: number; account_id: number; wxid: string }

async function waitCompleted(api: Api, taskId: number) {
  for (let i = 0; i < 240; i++) {
    const task = await api.call<{ status: string }>('GET', `/api/v1/tasks/${taskId}`)
    if (task.status === 'completed') return
    await new Promise((r) => setTimeout(r, 500))
  }
  throw new Error(`task ${taskId} did not complete`)
}

test('two versions to a segment: replies and opt-outs per version, then a follow-up skips who opted out', async ({ page }) => {
  const violations = watchPolicy(page)
  const api = await Api.signIn()
  const instanceName = `ab-e2e-${Date.now()}`
  const instanceId = await api.simInstance(instanceName)
  const segmentName = `新品人群 ${Date.now()}`

  // A segment of the instance's contacts, counted live as it is built.
  await signIn(page, 'admin', adminPassword)
  await page.getByRole('link', { name: '人群分组', exact: true }).click()
  await expect(page.getByRole('heading', { name: '人群分组' })).toBeVisible()
  await page.getByRole('button', { name: '新建分组' }).click()
  const dialog = page.getByRole('dialog', { name: '新建分组' })
  await dialog.getByRole('textbox', { name: '分组名称' }).fill(segmentName)
  await dialog.locator('label').filter({ hasText: instanceName }).click()
  // The sim has 2 accounts of 40 contacts each.
  await expect(dialog.getByTestId('segment-count')).toContainText('80 位客户')
  await expectAccessible(page)
  await screenshot(page, 'segment-editor')
  await dialog.getByRole('button', { name: '保存' }).click()
  await expect(dialog).toBeHidden()
  const row = page.getByTestId('segments').getByRole('row').filter({ hasText: segmentName })
  await row.getByRole('button', { name: '统计人数' }).click()
  await expect(row).toContainText('80 位客户')

  // The broadcast: the segment, two versions of the text, a fast rate.
  await page.getByRole('link', { name: '消息任务', exact: true }).click()
  await page.getByRole('link', { name: '新建群发' }).click()
  await page.getByRole('radio', { name: '使用人群分组' }).check({ force: true })
  await page.getByRole('combobox', { name: '人群分组' }).selectOption({ label: segmentName })
  await expect(page.getByTestId('estimate-sendable')).toContainText('80')
  await page.getByRole('button', { name: '下一步' }).click()
  await page.getByText('A/B 测试：发送多个文案版本').click()
  await page.getByRole('textbox', { name: '版本 A 版本名称' }).fill('短文案')
  await page.getByRole('textbox', { name: '版本 A 文案' }).fill('A版：{{ nickname }}，新品到店')
  await page.getByRole('textbox', { name: '版本 B 文案' }).fill('B版：{{ nickname }}，新品到店，回复 1 预约')
  await expect(page.getByText('比例合计：100%')).toBeVisible()
  await expectAccessible(page)
  await screenshot(page, 'broadcast-variants')
  await page.getByRole('button', { name: '下一步' }).click()
  await page.getByRole('spinbutton', { name: '每分钟发送' }).fill('6000')
  await page.getByRole('button', { name: '下一步' }).click()
  await expect(page.getByText('2 个版本')).toBeVisible()
  await page.getByRole('textbox', { name: '任务名称' }).fill('新品 AB 群发')
  await page.getByRole('button', { name: '创建任务' }).click()
  await expect(page).toHaveURL(/\/tasks\/\d+$/)
  const taskId = Number(new URL(page.url()).pathname.split('/').pop())
  await waitCompleted(api, taskId)

  // Replies from the sim: two opt-outs (TD, 退订) and an ordinary answer to B, one answer to A.
  const receivers = await api.call<{ items: Receiver[] }>('GET', `/api/v1/tasks/${taskId}/receivers?limit=200`)
  const contactOf = (r: Receiver) => api.call<Contact>('GET', `/api/v1/contacts/${r.contact_id}`)
  const a = receivers.items.filter((r) => r.variant === 'A')
  const b = receivers.items.filter((r) => r.variant === 'B')
  expect(a.length + b.length).toBe(80)
  await simInbound(api, instanceId, await contactOf(b[0]!), 'TD')
  await simInbound(api, instanceId, await contactOf(b[1]!), '退订')
  await simInbound(api, instanceId, await contactOf(b[2]!), '好的，想预约')
  await simInbound(api, instanceId, await contactOf(a[0]!), '有兴趣')

  await page.reload()
  const results = page.getByTestId('variant-results')
  await expect(async () => {
    await page.getByRole('button', { name: '刷新效果' }).click()
    await expect(results.getByTestId('variant-B').getByTestId('variant-opt-outs')).toHaveText('2', { timeout: 2000 })
  }).toPass({ timeout: 30_000 })
  await expect(results.getByTestId('variant-B')).toContainText(`3`)
  await expect(results.getByTestId('variant-A').getByTestId('variant-rate')).toHaveText(`${((1 / a.length) * 100).toFixed(1)}%`)
  await expect(results.getByTestId('variant-B').getByTestId('variant-rate')).toHaveText(`${((3 / b.length) * 100).toFixed(1)}%`)
  await expect(results.getByTestId('variant-A')).toContainText('短文案')
  // In words, in Chinese, naming the leader (B: three replies against one).
  await expect(results.getByText(/显著性：.*B/)).toBeVisible()
  await expectAccessible(page)
  await screenshot(page, 'task-variants')

  // A second broadcast to the same segment skips both who opted out, with the reason.
  const segments = await api.call<{ items: { id: number; name: string }[] }>('GET', `/api/v1/segments?q=${encodeURIComponent(segmentName)}`)
  const segmentId = segments.items[0]!.id
  const followUp = await api.call<{ id: number }>('POST', '/api/v1/tasks', {
    name: '新品跟进',
    task_type: 'broadcast',
    content: '新品第二波',
    audience: { segment_id: segmentId },
    rate_per_minute: 6000,
  })
  await waitCompleted(api, followUp.id)
  const outcomes = await api.call<{ sent: number; skipped_by_reason: Record<string, number> }>('GET', `/api/v1/tasks/${followUp.id}/outcomes`)
  expect(outcomes.skipped_by_reason.unsubscribed).toBe(2)
  expect(outcomes.sent).toBe(78)
  await page.goto(`/tasks/${followUp.id}`)
  await expect(page.getByTestId('task-outcomes')).toContainText('2')

  // The opt-out list, narrowed to this instance, holds exactly those two.
  await page.getByRole('link', { name: '退订名单', exact: true }).click()
  await expect(page.getByRole('heading', { name: '退订名单' })).toBeVisible()
  await page.getByRole('combobox', { name: '实例' }).selectOption({ label: instanceName })
  await page.getByRole('button', { name: '搜索' }).click()
  await expect(page.getByTestId('contacts').getByTestId('opted-out')).toHaveCount(2)
  await expectAccessible(page)

  // Results over time: the inline texts sent today, then per sending account.
  await page.getByRole('link', { name: '群发效果', exact: true }).click()
  await expect(page.getByRole('heading', { name: '群发效果' })).toBeVisible()
  await expect(page.getByTestId('outcome-rows')).toContainText('inline')
  await page.getByRole('combobox', { name: '统计维度' }).selectOption({ label: '按发送账号' })
  await expect(page.getByTestId('outcome-rows')).not.toContainText('inline')
  await expect(page.getByTestId('outcome-chart')).toBeVisible()
  await expectAccessible(page)
  await screenshot(page, 'outcomes')
  expect(violations).toEqual([])
})
