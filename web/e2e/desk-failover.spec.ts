import { expect, test } from '@playwright/test'

import { Api, simKf } from './api'
import { balancer, startApi } from './processes'
import { agentPage } from './support'

type Sent = { to: string; content: string; via: string }

// Two `wework api` processes behind one address; the agent's workbench is served by the first.
// Killing it mid-chat moves the page to the second: the live stream resumes from the last event
// the page saw, so what the visitor wrote meanwhile shows once, and nothing shows twice.
test('the workbench carries on when the API process serving it is killed mid-chat', async ({ browser }) => {
  const api = await Api.signIn()
  const stamp = Date.now()
  const instanceId = await api.simKfInstance(`kf-failover-${stamp}`)
  const accounts = await api.call<{ items: { id: number; wxid: string }[] }>('GET', `/api/v1/accounts?instance_id=${instanceId}&limit=50`)
  const kf = accounts.items.find((a) => a.wxid === 'kf:wksim1')!
  const group = await api.call<{ id: number }>('POST', '/api/v1/desk/skill-groups', { name: `切换-${stamp}`, assignment_rule: 'least_busy' })
  await api.call('POST', '/api/v1/desk/channels', { name: `切换渠道 ${stamp}`, account_id: kf.id, skill_group_id: group.id })
  const name = `fo${stamp}`
  const password = 'Agent-Passw0rd!'
  const userId = await api.userWith(name, password, ['desk:work', 'profile:self'])
  await api.call('POST', '/api/v1/desk/agents', { user_id: userId, agent_no: `F${stamp % 100000}`, max_concurrent: 3, skill_group_ids: [group.id] })

  const first = await startApi()
  const second = await startApi()
  const lb = await balancer([first.port, second.port])
  try {
    const page = await agentPage(browser, name, password, lb.url)
    const visitor = `wmFO${stamp}`
    await simKf('POST', 'messages', { open_kfid: 'wksim1', external_userid: visitor, content: '第一条：请问今天能发货吗' })
    const item = page.getByTestId('desk-mine').getByRole('button', { name: /微信访客/ })
    await expect(item).toBeVisible()
    await item.click()
    const chat = page.getByTestId('chat-messages')
    await expect(chat).toContainText('第一条：请问今天能发货吗')
    await page.getByRole('button', { name: '接入', exact: true }).click()
    await page.getByRole('textbox', { name: '输入消息' }).fill('您好，我帮您查一下')
    await page.getByRole('button', { name: '发送', exact: true }).click()
    await expect(chat).toContainText('您好，我帮您查一下')

    // The process serving the page dies at once; the visitor goes on writing.
    await first.kill()
    await simKf('POST', 'messages', { open_kfid: 'wksim1', external_userid: visitor, content: '第二条：地址是上海' })
    await simKf('POST', 'messages', { open_kfid: 'wksim1', external_userid: visitor, content: '第三条：谢谢' })
    await expect(chat).toContainText('第三条：谢谢')
    await expect(page.getByText('实时', { exact: true })).toBeVisible()
    for (const text of ['第一条：请问今天能发货吗', '您好，我帮您查一下', '第二条：地址是上海', '第三条：谢谢']) {
      await expect(chat.getByText(text, { exact: true }), text).toHaveCount(1)
    }

    // The answer goes out through the second process, once.
    await page.getByRole('textbox', { name: '输入消息' }).fill('今天下午发出')
    await page.getByRole('button', { name: '发送', exact: true }).click()
    await expect(chat.getByText('今天下午发出', { exact: true })).toHaveCount(1)
    await expect.poll(async () => (await simKf<Sent[]>('GET', 'sent')).filter((s) => s.to === visitor).map((s) => s.content)).toEqual(['您好，我帮您查一下', '今天下午发出'])
  } finally {
    await lb.close()
    await first.kill()
    await second.kill()
  }
})
