import { expect, test } from '@playwright/test'

import { Api, adminPassword, simInbound } from './api'
import { agentPage, selectNaming, expectAccessible, screenshot, signIn, watchPolicy } from './support'

type Contact = { id: number; account_id: number; wxid: string; nickname: string | null }


test('two agents: a visitor queues, is assigned, answered, transferred with a reason and closed', async ({ page, browser }) => {
  const violations = watchPolicy(page)
  const api = await Api.signIn()
  const stamp = Date.now()
  const instanceId = await api.simInstance(`desk-e2e-${stamp}`)
  const contacts = await api.call<{ items: Contact[] }>('GET', `/api/v1/contacts?instance_id=${instanceId}&limit=2`)
  const visitor = contacts.items[0]
  const shown = visitor.nickname || visitor.wxid
  const groupName = `售后-${stamp}`

  // The manager sets up a skill group in the console.
  await signIn(page, 'admin', adminPassword)
  await page.getByRole('link', { name: '客服设置', exact: true }).click()
  await page.getByRole('button', { name: '新建技能组' }).click()
  const dialog = page.getByRole('dialog', { name: '新建技能组' })
  await dialog.getByRole('textbox', { name: '名称' }).fill(groupName)
  await dialog.getByRole('button', { name: '保存' }).click()
  await expect(page.getByTestId('skill-groups')).toContainText(groupName)
  // …edits it in place…
  await page.getByTestId('skill-groups').getByRole('row', { name: new RegExp(groupName) }).getByRole('button', { name: '编辑' }).click()
  const editGroup = page.getByRole('dialog', { name: '编辑技能组' })
  await editGroup.getByRole('textbox', { name: '名称' }).fill(`${groupName}（改）`)
  await editGroup.getByRole('button', { name: '保存' }).click()
  await expect(page.getByTestId('skill-groups')).toContainText(`${groupName}（改）`)
  // …and a visitor group to file visitors under.
  await page.getByRole('tab', { name: '访客分组' }).click()
  await page.getByRole('button', { name: '新建访客分组' }).click()
  const newVisitorGroup = page.getByRole('dialog', { name: '新建访客分组' })
  await newVisitorGroup.getByRole('textbox', { name: '名称' }).fill(`VIP${stamp}`)
  await newVisitorGroup.getByRole('button', { name: '保存' }).click()
  await expect(page.getByTestId('visitor-groups')).toContainText(`VIP${stamp}`)
  await page.getByRole('tab', { name: '技能组' }).click()
  await expectAccessible(page)
  // …and a shared quick reply with the visitor's name in it.
  await page.getByRole('tab', { name: '共享快捷回复' }).click()
  await page.getByRole('textbox', { name: '标题' }).fill(`问候${stamp}`)
  await page.getByRole('textbox', { name: '内容' }).fill('{{ nickname }}您好，请问有什么可以帮您？')
  await page.getByRole('button', { name: '添加快捷回复' }).click()
  await expect(page.getByTestId('quick-replies')).toContainText(`问候${stamp}`)
  const groups = await api.call<{ id: number; name: string }[]>('GET', '/api/v1/desk/skill-groups')
  const group = groups.find((g) => g.name === `${groupName}（改）`)!
  await api.call('POST', '/api/v1/desk/channels', {
    name: `官方客服 ${stamp}`, account_id: visitor.account_id, skill_group_id: group.id,
    welcome_message: '您好，客服马上为您服务', rating_prompt: '请为本次服务打分：回复 1-5',
  })
  const agents: { name: string; password: string }[] = []
  for (const [i, name] of [`kfa${stamp}`, `kfb${stamp}`].entries()) {
    const password = 'Agent-Passw0rd!'
    const userId = await api.userWith(name, password, ['desk:work', 'profile:self'])
    await api.call('POST', '/api/v1/desk/agents', { user_id: userId, agent_no: `E${stamp % 100000}${i}`, max_concurrent: 3, skill_group_ids: [group.id] })
    agents.push({ name, password })
  }

  // Two agents online in two browsers; the visitor writes.
  const a = await agentPage(browser, agents[0].name, agents[0].password)
  const b = await agentPage(browser, agents[1].name, agents[1].password)
  await simInbound(api, instanceId, visitor, '你好，我的订单还没到')
  // Round robin: the first agent (given nothing yet, created first) gets it, live.
  const mine = a.getByTestId('desk-mine')
  await expect(mine.getByRole('button', { name: shown })).toBeVisible()
  await mine.getByRole('button', { name: shown }).click()
  await expect(a.getByTestId('chat-messages')).toContainText('你好，我的订单还没到')
  await expect(a.getByTestId('visitor-panel')).toContainText(visitor.wxid)
  await a.getByTestId('visitor-panel').getByRole('combobox', { name: '访客分组' }).selectOption({ label: `VIP${stamp}` })
  await a.getByTestId('visitor-panel').getByRole('button', { name: '保存' }).click()
  await expect.poll(async () => {
    const filed = await api.call<{ items: { external_id: string }[] }>('GET', `/api/v1/desk/visitors?q=${encodeURIComponent(visitor.wxid)}`)
    const groups = await api.call<{ name: string; visitors: number }[]>('GET', '/api/v1/desk/visitor-groups')
    return filed.items.length > 0 && groups.find((g) => g.name === `VIP${stamp}`)?.visitors
  }).toBe(1)
  await a.getByRole('button', { name: '接入', exact: true }).click()
  await a.getByRole('combobox', { name: '快捷回复' }).selectOption({ label: `问候${stamp}` })
  await expect(a.getByTestId('chat-messages')).toContainText(`${shown}您好，请问有什么可以帮您？`)
  await a.getByRole('textbox', { name: '输入消息' }).fill('您好，我来帮您查一下')
  await a.getByRole('button', { name: '发送', exact: true }).click()
  await expect(a.getByTestId('chat-messages')).toContainText('您好，我来帮您查一下')
  await simInbound(api, instanceId, visitor, '单号 20261203')
  await expect(a.getByTestId('chat-messages')).toContainText('单号 20261203')
  await expectAccessible(a)
  await screenshot(a, 'desk-workbench')

  // Transfer to the colleague with a reason; it leaves A and reaches B, who closes it.
  await a.getByRole('button', { name: '转接', exact: true }).click()
  const transfer = a.getByRole('dialog', { name: '转接' })
  await selectNaming(transfer.getByRole('combobox', { name: '客服' }), agents[1].name)
  await transfer.getByRole('textbox', { name: '转接原因' }).fill('物流问题转专员')
  await transfer.getByRole('button', { name: '转接', exact: true }).click()
  await expect(mine.getByRole('button', { name: shown })).toBeHidden()
  const theirs = b.getByTestId('desk-mine')
  await expect(theirs.getByRole('button', { name: shown })).toBeVisible()
  await theirs.getByRole('button', { name: shown }).click()
  await expect(b.getByTestId('chat-messages')).toContainText('单号 20261203')
  await b.getByRole('button', { name: '接入', exact: true }).click()

  // B brings A back in to serve the visitor together: A finds it under 协助中, live, and writes.
  await b.getByTestId('desk-members').getByRole('button', { name: '邀请同事' }).click()
  const invite = b.getByRole('dialog', { name: '邀请同事' })
  await selectNaming(invite.getByRole('combobox', { name: '客服' }), agents[0].name)
  await invite.getByRole('button', { name: '邀请同事' }).click()
  await expect(b.getByTestId('desk-members')).toContainText(agents[0].name)
  const helping = a.getByTestId('desk-assisting').getByRole('button', { name: shown })
  await expect(helping).toBeVisible()
  await helping.click()
  await expect(a.getByTestId('chat-messages')).toContainText('单号 20261203')
  await expect(a.getByRole('button', { name: '结束会话', exact: true })).toBeHidden()
  await a.getByRole('textbox', { name: '输入消息' }).fill('我是之前的客服，补充一下')
  await a.getByRole('button', { name: '发送', exact: true }).click()
  await expect(b.getByTestId('chat-messages')).toContainText('我是之前的客服，补充一下')
  await b.getByRole('button', { name: '结束会话', exact: true }).click()
  await expect(theirs.getByRole('button', { name: shown })).toBeHidden()
  await expect(helping).toBeHidden()
  // The visitor answers the rating prompt.
  await simInbound(api, instanceId, visitor, '5 很满意')

  // The supervisor sees both agents online with nothing open.
  await page.getByRole('link', { name: '客服监控', exact: true }).click()
  const rows = page.getByTestId('desk-agents')
  await expect(rows).toContainText(`0 / 3`)
  await expect(page.getByTestId('desk-groups')).toContainText(groupName)
  await expectAccessible(page)
  await screenshot(page, 'desk-supervisor')
  // …and the health view counts the closed conversation in the desk's service levels.
  await page.getByRole('link', { name: '健康总览', exact: true }).click()
  await expect(page.getByTestId('health-block-desk')).toContainText('客服服务水平')
  await expect(page.getByTestId('health-block-desk')).toContainText(/已结束 [1-9]/)
  // The conversation history shows it rated, with its transfer and the whole chat.
  await page.getByRole('link', { name: '会话记录', exact: true }).click()
  const history = page.getByTestId('desk-history')
  const row = history.getByRole('row', { name: new RegExp(groupName) }).first()
  await expect(async () => {
    await page.getByRole('button', { name: '搜索', exact: true }).click()
    await expect(row.getByRole('img', { name: '5 星' })).toHaveText('★★★★★', { timeout: 1000 })
  }).toPass()
  await expect(row).toContainText('客服结束')
  await expectAccessible(page)
  await row.getByRole('button', { name: /^会话 #/ }).click()
  const recordPane = page.getByTestId('conversation-record')
  await expect(recordPane.getByTestId('record-rating')).toContainText('很满意')
  await expect(recordPane.getByTestId('record-transfers')).toContainText('物流问题转专员')
  await expect(recordPane.getByTestId('chat-messages')).toContainText('单号 20261203')
  await expect(recordPane.getByTestId('chat-messages')).toContainText('我是之前的客服，补充一下')
  await expectAccessible(page)
  await screenshot(page, 'desk-history')
  await page.keyboard.press('Escape')
  // Only what is rated 4 stars or fewer: this one is not among them.
  await page.getByRole('combobox', { name: '评价' }).selectOption({ label: '4 星及以下' })
  await page.getByRole('button', { name: '搜索', exact: true }).click()
  await expect(history.getByRole('row', { name: new RegExp(groupName) })).toHaveCount(0)
  const transfers = await api.call<{ items: { id: number }[] }>('GET', `/api/v1/desk/conversations?limit=5`)
  const record = await api.call<{ reason: string }[]>('GET', `/api/v1/desk/conversations/${transfers.items[0].id}/transfers`)
  expect(record.map((r) => r.reason)).toEqual(['物流问题转专员'])
  expect(violations).toEqual([])
})
