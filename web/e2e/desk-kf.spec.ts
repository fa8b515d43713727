import { expect, test } from '@playwright/test'

import { Api, adminPassword, simKf } from './api'
import { agentPage, selectNaming, expectAccessible, screenshot, signIn, watchPolicy } from './support'

type Sent = { to: string; content: string; via: string }
type Session = { external_userid: string; service_state: number }


test('a WeChat user through 微信客服: welcomed, answered within the send window, transferred, closed and rated', async ({ page, browser }) => {
  const violations = watchPolicy(page)
  const api = await Api.signIn()
  const stamp = Date.now()
  const instanceId = await api.simKfInstance(`kf-e2e-${stamp}`)
  const accounts = await api.call<{ items: { id: number; wxid: string }[] }>('GET', `/api/v1/accounts?instance_id=${instanceId}&limit=50`)
  const kf = accounts.items.find((a) => a.wxid === 'kf:wksim0')!
  const group = await api.call<{ id: number }>('POST', '/api/v1/desk/skill-groups', { name: `微信客服-${stamp}`, assignment_rule: 'round_robin' })
  await api.call('POST', '/api/v1/desk/channels', {
    name: `公众号客服 ${stamp}`, account_id: kf.id, skill_group_id: group.id,
    welcome_message: '欢迎咨询，客服马上为您服务', rating_prompt: '请为本次服务打分：回复 1-5',
  })
  const agents: { name: string; password: string }[] = []
  for (const [i, name] of [`wxa${stamp}`, `wxb${stamp}`].entries()) {
    const password = 'Agent-Passw0rd!'
    const userId = await api.userWith(name, password, ['desk:work', 'profile:self'])
    await api.call('POST', '/api/v1/desk/agents', { user_id: userId, agent_no: `W${stamp % 100000}${i}`, max_concurrent: 3, skill_group_ids: [group.id] })
    agents.push({ name, password })
  }

  // The manager sees the channel tagged as 微信客服.
  await signIn(page, 'admin', adminPassword)
  await page.getByRole('link', { name: '客服设置', exact: true }).click()
  await page.getByRole('tab', { name: '渠道' }).click()
  await expect(page.getByTestId('channels').getByRole('row', { name: new RegExp(`公众号客服 ${stamp}`) })).toContainText('微信客服')

  // Two agents online in two browsers; a WeChat user opens the chat from a link and writes.
  const a = await agentPage(browser, agents[0].name, agents[0].password)
  const b = await agentPage(browser, agents[1].name, agents[1].password)
  const visitor = `wmE2E${stamp}`
  await simKf('POST', 'enter', { open_kfid: 'wksim0', external_userid: visitor, scene_param: 'e2e_poster' })
  await expect.poll(async () => (await simKf<Sent[]>('GET', 'sent')).some((s) => s.to === visitor && s.content === '欢迎咨询，客服马上为您服务')).toBe(true)
  const asked = await simKf<{ msgid: string }>('POST', 'messages', { open_kfid: 'wksim0', external_userid: visitor, content: '你好，我想咨询会员卡' })

  // Round robin gives it to the first agent, live, named after the WeChat profile.
  const mine = a.getByTestId('desk-mine')
  const item = mine.getByRole('button', { name: /微信访客/ })
  await expect(item).toBeVisible()
  await item.click()
  await expect(a.getByTestId('chat-messages')).toContainText('你好，我想咨询会员卡')
  await expect(a.getByTestId('visitor-panel')).toContainText(visitor)
  await expect(a.getByTestId('visitor-panel')).toContainText('e2e_poster')
  await a.getByRole('button', { name: '接入', exact: true }).click()
  await expect(a.getByTestId('send-window')).toContainText('还可发送 5 条')
  await a.getByRole('textbox', { name: '输入消息' }).fill('您好，会员卡可以在小程序里办理')
  await a.getByRole('button', { name: '发送', exact: true }).click()
  await expect(a.getByTestId('chat-messages')).toContainText('您好，会员卡可以在小程序里办理')
  await expect(a.getByTestId('send-window')).toContainText('还可发送 4 条')
  await expect.poll(async () => (await simKf<Sent[]>('GET', 'sent')).some((s) => s.via === 'send_msg' && s.content === '您好，会员卡可以在小程序里办理')).toBe(true)

  // A receptionist answers in the WeCom client: it shows live under their name and does not
  // take from the window; the visitor recalls their first message, which shows as recalled.
  await simKf('POST', 'servicer_messages', { open_kfid: 'wksim0', external_userid: visitor, servicer_userid: 'zhangsan', content: '店长补充：办卡送积分' })
  await expect(a.getByTestId('chat-messages').getByRole('listitem').filter({ hasText: '店长补充：办卡送积分' })).toContainText('接待人员 zhangsan（企业微信）')
  await expect(a.getByTestId('send-window')).toContainText('还可发送 4 条')
  await simKf('POST', 'recall', { open_kfid: 'wksim0', external_userid: visitor, msgid: asked.msgid })
  await expect(a.getByTestId('chat-messages').getByRole('listitem').filter({ hasText: '你好，我想咨询会员卡' })).toContainText('已撤回')
  await expectAccessible(a)
  await screenshot(a, 'desk-wecom-kf')

  // Transferred with a reason; the colleague closes it, which ends the WeCom session and sends
  // the rating prompt with the session's code; the user's "5" rates it.
  await a.getByRole('button', { name: '转接', exact: true }).click()
  const transfer = a.getByRole('dialog', { name: '转接' })
  await selectNaming(transfer.getByRole('combobox', { name: '客服' }), agents[1].name)
  await transfer.getByRole('textbox', { name: '转接原因' }).fill('会员问题转专员')
  await transfer.getByRole('button', { name: '转接', exact: true }).click()
  await expect(item).toBeHidden()
  const theirs = b.getByTestId('desk-mine').getByRole('button', { name: /微信访客/ })
  await expect(theirs).toBeVisible()
  await theirs.click()
  await b.getByRole('button', { name: '接入', exact: true }).click()
  await b.getByRole('button', { name: '结束会话', exact: true }).click()
  await expect(theirs).toBeHidden()
  await expect.poll(async () => (await simKf<Session[]>('GET', 'sessions')).find((s) => s.external_userid === visitor)?.service_state).toBe(4)
  await expect.poll(async () => (await simKf<Sent[]>('GET', 'sent')).some((s) => s.to === visitor && s.via === 'on_event' && s.content === '请为本次服务打分：回复 1-5')).toBe(true)
  await simKf('POST', 'messages', { open_kfid: 'wksim0', external_userid: visitor, content: '5' })
  await expect.poll(async () => {
    const list = await api.call<{ items: { visitor: { external_id: string }; rating: number | null }[] }>('GET', '/api/v1/desk/conversations?limit=20')
    return list.items.find((c) => c.visitor.external_id === visitor)?.rating
  }).toBe(5)
  expect(violations).toEqual([])
})
