import { expect, test, type Page } from '@playwright/test'

import { adminPassword, Api, simInbound } from './api'
import { expectAccessible, screenshot, signIn, watchPolicy } from './support'

type Page_<T> = { items: T[] }
type Contact = {
  id: number
  wxid: string
  account_id: number
  nickname: string | null
  remark: string | null
  custom_fields: Record<string, unknown> | null
  tags: { name: string }[]
  friend_status: string
  is_blocked: boolean
  unsubscribed_at?: string | null
  unsubscribe_source?: string | null
  unsubscribe_message?: string | null
}
type Group = { id: number; group_name: string | null }
type Member = { member_wxid: string; member_nickname: string | null; member_type: string }

/** Each spec makes its own sim instance: the lists are narrowed to it, as other tests add theirs. */
async function showInstance(page: Page, name: string) {
  await page.getByRole('combobox', { name: '实例' }).selectOption({ label: name })
  await page.getByRole('button', { name: '搜索' }).click()
}

const bodyRows = (page: Page, testId: string) => page.getByTestId(testId).locator('.el-table__body tr')

/** Contacts of the instance a broadcast would reach, each found alone by its wxid as keyword. */
async function reachableContacts(api: Api, instanceId: number, n: number): Promise<Contact[]> {
  const all = await api.call<Page_<Contact>>('GET', `/api/v1/contacts?instance_id=${instanceId}&contact_type=external&limit=50`)
  const found: Contact[] = []
  for (const c of all.items.filter((c) => c.friend_status === 'normal' && !c.is_blocked && c.nickname)) {
    const same = await api.call<Page_<Contact>>('GET', `/api/v1/contacts?instance_id=${instanceId}&q=${encodeURIComponent(c.wxid)}`)
    if (same.items.length === 1) found.push(c)
    if (found.length === n) return found
  }
  throw new Error(`fewer than ${n} reachable contacts with a unique wxid`)
}

async function openContact(page: Page, instance: string, contact: Contact) {
  await page.getByRole('textbox', { name: '昵称、备注、手机号' }).fill(contact.wxid)
  await showInstance(page, instance)
  await expect(bodyRows(page, 'contacts')).toHaveCount(1)
  await bodyRows(page, 'contacts').first().getByRole('button', { name: contact.nickname ?? contact.wxid }).click()
  const drawer = page.getByRole('dialog').filter({ has: page.getByRole('tab', { name: '资料' }) })
  await expect(drawer).toContainText(contact.wxid)
  return drawer
}

test('select contacts and tag them in bulk, then filter the list by that tag', async ({ page }) => {
  const violations = watchPolicy(page)
  const name = `contacts-e2e-${Date.now()}`
  await (await Api.signIn()).simInstance(name)
  const tag = `重点跟进${Date.now() % 100000}`

  await signIn(page, 'admin', adminPassword)
  await page.getByRole('link', { name: '客户', exact: true }).click()
  await expect(page.getByRole('heading', { name: '客户', exact: true })).toBeVisible()
  await showInstance(page, name)
  await expect(bodyRows(page, 'contacts')).toHaveCount(50)

  const rowBoxes = page.getByTestId('contacts').getByRole('checkbox', { name: /^选择 (?!本页)/ })
  await rowBoxes.nth(0).check()
  await rowBoxes.nth(1).check()
  await expect(page.getByText('已选 2 位客户')).toBeVisible()
  await page.getByRole('button', { name: '批量打标签' }).click()
  const dialog = page.getByRole('dialog', { name: '为 2 位客户批量打标签' })
  await dialog.getByRole('textbox', { name: '添加标签' }).fill(tag)
  await dialog.getByRole('button', { name: `新建标签「${tag}」` }).click()
  await expect(dialog.getByRole('list', { name: '添加标签' })).toContainText(tag)
  await expectAccessible(page)
  await dialog.getByRole('button', { name: '应用' }).click()
  await expect(page.getByText('2 位客户：添加 1 个标签，移除 0 个标签')).toBeVisible()
  await expect(bodyRows(page, 'contacts').filter({ hasText: tag })).toHaveCount(2)

  await page.getByRole('textbox', { name: '包含任一标签' }).fill(tag)
  await page.getByRole('button', { name: tag, exact: true }).click()
  await page.getByRole('button', { name: '搜索' }).click()
  await expect(bodyRows(page, 'contacts')).toHaveCount(2)
  await expect(bodyRows(page, 'contacts').filter({ hasText: tag })).toHaveCount(2)
  await expect(page.getByRole('link', { name: '导出 CSV' })).toHaveAttribute('href', /tags_any=\d+/)
  await expectAccessible(page)
  await screenshot(page, 'contacts')

  // Taking the tag off again through the same dialog empties the filtered list.
  await page.getByRole('checkbox', { name: '选择本页全部客户' }).check()
  await page.getByRole('button', { name: '批量打标签' }).click()
  await dialog.getByRole('textbox', { name: '移除标签' }).fill(tag)
  await dialog.getByRole('button', { name: tag, exact: true }).click()
  await dialog.getByRole('button', { name: '应用' }).click()
  await expect(page.getByText('2 位客户：添加 0 个标签，移除 1 个标签')).toBeVisible()
  await page.getByRole('button', { name: '搜索' }).click()
  await expect(bodyRows(page, 'contacts')).toHaveCount(0)
  expect(violations).toEqual([])
})

test('open a contact: edit its remark and a custom field, see its groups and messages', async ({ page }) => {
  const violations = watchPolicy(page)
  const api = await Api.signIn()
  const name = `contact-detail-e2e-${Date.now()}`
  const instanceId = await api.simInstance(name)
  // A customer in the sim's group, and one message sent to them.
  const groups = await api.call<Page_<Group>>('GET', `/api/v1/groups?instance_id=${instanceId}`)
  const group = groups.items[0]
  const members = await api.call<Page_<Member>>('GET', `/api/v1/groups/${group.id}/members`)
  // The keyword matches wxids by substring: take a member whose wxid finds only them.
  let member: Member | undefined
  let contact: Contact | undefined
  for (const m of members.items.filter((m) => m.member_type === 'external')) {
    const found = await api.call<Page_<Contact>>('GET', `/api/v1/contacts?instance_id=${instanceId}&q=${m.member_wxid}`)
    if (found.items.length === 1) [member, contact] = [m, found.items[0]]
  }
  if (!member || !contact) throw new Error('no group member with a unique wxid')
  const text = `您好，e2e ${Date.now()}`
  await api.call('POST', '/api/v1/messages', { contact_id: contact.id, content: text })
  await expect
    .poll(async () => (await api.call<Page_<unknown>>('GET', `/api/v1/messages?contact_id=${contact.id}`)).items.length, { timeout: 30_000 })
    .toBeGreaterThan(0)

  await signIn(page, 'admin', adminPassword)
  await page.getByRole('link', { name: '客户', exact: true }).click()
  await page.getByRole('textbox', { name: '昵称、备注、手机号' }).fill(contact.wxid)
  await showInstance(page, name)
  await expect(bodyRows(page, 'contacts')).toHaveCount(1)
  await bodyRows(page, 'contacts').first().getByRole('button', { name: contact.nickname ?? contact.wxid }).click()

  const drawer = page.getByRole('dialog').filter({ has: page.getByRole('tab', { name: '资料' }) })
  await expect(drawer).toContainText(contact.wxid)
  await drawer.getByRole('textbox', { name: '备注' }).fill('e2e 重要客户')
  await drawer.getByRole('button', { name: '添加字段' }).click()
  const rows = Object.keys(contact.custom_fields ?? {}).length
  await drawer.getByRole('textbox', { name: `字段名 ${rows + 1}` }).fill('level')
  await drawer.getByRole('textbox', { name: `字段值 ${rows + 1}` }).fill('gold')
  // A local tag made on the way; the synced tags stay as they are.
  const tag = `老客户${Date.now() % 100000}`
  await drawer.getByRole('textbox', { name: '本地标签' }).fill(tag)
  await drawer.getByRole('button', { name: `新建标签「${tag}」` }).click()
  await drawer.getByRole('button', { name: '保存' }).click()
  await expect(page.getByText('操作成功')).toBeVisible()
  await expect(bodyRows(page, 'contacts').first()).toContainText('e2e 重要客户')
  const saved = await api.call<Contact>('GET', `/api/v1/contacts/${contact.id}`)
  expect(saved.remark).toBe('e2e 重要客户')
  expect(saved.custom_fields).toMatchObject({ level: 'gold' })
  expect(saved.tags.map((t) => t.name).sort()).toEqual([...contact.tags.map((t) => t.name), tag].sort())
  await expectAccessible(page)
  await drawer.getByRole('tab', { name: '资料' }).scrollIntoViewIfNeeded()
  await screenshot(page, 'contact-detail')

  await drawer.getByRole('tab', { name: '消息记录' }).click()
  const messages = drawer.getByTestId('contact-messages')
  await expect(messages.locator('.el-table__body tr').filter({ hasText: text })).toContainText('发出')
  await expectAccessible(page)

  await drawer.getByRole('tab', { name: '所在群' }).click()
  const groupLink = drawer.getByTestId('contact-groups').getByRole('link', { name: group.group_name! })
  await expect(groupLink).toBeVisible()
  await expectAccessible(page)
  await groupLink.click()
  await expect(page).toHaveURL(new RegExp(`/groups\\?group=${group.id}$`))
  await expect(page.getByTestId('group-members')).toContainText(member.member_nickname ?? member.member_wxid)
  expect(violations).toEqual([])
})

test('groups: find a group, read its members, label it', async ({ page }) => {
  const violations = watchPolicy(page)
  const api = await Api.signIn()
  const name = `groups-e2e-${Date.now()}`
  const instanceId = await api.simInstance(name)
  const groups = await api.call<Page_<Group>>('GET', `/api/v1/groups?instance_id=${instanceId}`)
  const members = await api.call<Page_<Member>>('GET', `/api/v1/groups/${groups.items[0].id}/members`)

  await signIn(page, 'admin', adminPassword)
  await page.getByRole('link', { name: '客户群', exact: true }).click()
  await expect(page.getByRole('heading', { name: '客户群', exact: true })).toBeVisible()
  await showInstance(page, name)
  // The sim gives each of its 2 accounts one group.
  await expect(bodyRows(page, 'groups')).toHaveCount(2)
  await expectAccessible(page)
  await screenshot(page, 'groups')

  const groupName = groups.items[0].group_name!
  await bodyRows(page, 'groups').getByRole('button', { name: groupName }).first().click()
  const drawer = page.getByRole('dialog', { name: groupName })
  const table = drawer.getByTestId('group-members')
  await expect(table.locator('.el-table__body tr')).toHaveCount(members.items.length)
  for (const m of members.items) await expect(table).toContainText(m.member_nickname ?? m.member_wxid)
  await drawer.getByText('显示已退群的成员').click()
  await expect(table.getByRole('columnheader', { name: '退群时间' })).toBeVisible()

  await drawer.getByRole('textbox', { name: '标签' }).fill('高价值')
  await drawer.getByRole('textbox', { name: '标签' }).press('Enter')
  await drawer.getByRole('button', { name: '保存' }).click()
  await expect(page.getByText('操作成功')).toBeVisible()
  await expect(bodyRows(page, 'groups').filter({ hasText: '高价值' })).toHaveCount(1)
  await expectAccessible(page)
  expect(violations).toEqual([])
})

test('opt-out: mark a contact opted out and back in, a TD reply opts another out, broadcasts skip it with the reason', async ({ page }) => {
  const violations = watchPolicy(page)
  const api = await Api.signIn()
  const name = `opt-out-e2e-${Date.now()}`
  const instanceId = await api.simInstance(name)
  const [byHand, byReply] = await reachableContacts(api, instanceId, 2)
  const reason = '电话中要求不再接收'

  await signIn(page, 'admin', adminPassword)
  await page.getByRole('link', { name: '客户', exact: true }).click()
  let drawer = await openContact(page, name, byHand)
  const optOut = drawer.getByTestId('contact-opt-out')
  await expect(optOut).toContainText('未退订')
  await optOut.getByRole('button', { name: '标记退订' }).click()
  const dialog = page.getByRole('dialog', { name: `将 ${byHand.nickname} 标记为退订` })
  await dialog.getByRole('textbox', { name: '原因（可选）' }).fill(reason)
  await expectAccessible(page)
  await dialog.getByRole('button', { name: '标记退订' }).click()
  await expect(dialog).toBeHidden()
  await expect(optOut).toContainText('已退订')
  await expect(optOut).toContainText('手动标记')
  await expect(optOut).toContainText(reason)
  await expect(bodyRows(page, 'contacts').first().getByTestId('opted-out')).toHaveText('已退订')
  await expectAccessible(page)
  await screenshot(page, 'contact-opt-out')
  await page.keyboard.press('Escape')
  await expect(drawer).toBeHidden()

  // The opt-out list: the filter finds it (and only it, on this fresh instance); the export agrees.
  await page.getByRole('textbox', { name: '昵称、备注、手机号' }).fill('')
  await page.getByRole('combobox', { name: '退订' }).selectOption({ label: '已退订' })
  await page.getByRole('button', { name: '搜索' }).click()
  await expect(bodyRows(page, 'contacts')).toHaveCount(1)
  await expect(bodyRows(page, 'contacts').first()).toContainText(byHand.nickname!)
  await expect(page.getByRole('link', { name: '导出 CSV' })).toHaveAttribute('href', /unsubscribed=true/)
  await page.getByRole('combobox', { name: '退订' }).selectOption({ label: '未退订' })
  await page.getByRole('button', { name: '搜索' }).click()
  await expect(bodyRows(page, 'contacts').filter({ hasText: byHand.nickname! })).toHaveCount(0)

  // Subscribed again, after confirming (the dialog speaks the console's language).
  await page.getByRole('combobox', { name: '退订' }).selectOption({ label: '退订：全部' })
  drawer = await openContact(page, name, byHand)
  await drawer.getByRole('button', { name: '恢复订阅' }).click()
  await page.getByRole('dialog', { name: '恢复订阅' }).getByRole('button', { name: '确认' }).click()
  await expect(drawer.getByTestId('contact-opt-out')).toContainText('未退订')
  await expect(bodyRows(page, 'contacts').first().getByTestId('opted-out')).toHaveCount(0)
  expect((await api.call<Contact>('GET', `/api/v1/contacts/${byHand.id}`)).unsubscribed_at ?? null).toBeNull()
  await page.keyboard.press('Escape')
  await expect(drawer).toBeHidden()

  // The other contact answers a broadcast with TD: the agent's event opts them out.
  await simInbound(api, instanceId, byReply, 'TD')
  await expect
    .poll(async () => (await api.call<Contact>('GET', `/api/v1/contacts/${byReply.id}`)).unsubscribed_at ?? null, { timeout: 20_000 })
    .not.toBeNull()
  await page.getByRole('textbox', { name: '昵称、备注、手机号' }).fill('')
  await page.getByRole('combobox', { name: '退订' }).selectOption({ label: '已退订' })
  await page.getByRole('button', { name: '搜索' }).click()
  await expect(bodyRows(page, 'contacts')).toHaveCount(1)
  await bodyRows(page, 'contacts').first().getByRole('button', { name: byReply.nickname! }).click()
  drawer = page.getByRole('dialog').filter({ has: page.getByRole('tab', { name: '资料' }) })
  await expect(drawer.getByTestId('contact-opt-out')).toContainText('客户发消息退订（代理实例）')
  await expect(drawer.getByTestId('contact-opt-out').locator('.el-descriptions')).toContainText('TD')
  await page.keyboard.press('Escape')

  // The broadcast wizard's estimate for the instance names the one skipped as opted out.
  await page.goto('/tasks/new')
  await page.locator('label').filter({ hasText: name }).click()
  await expect(page.getByTestId('estimate-skipped')).toContainText('已退订: 1')
  await expectAccessible(page)

  // A broadcast to both: the opted-out contact is skipped, and its task page says why.
  const task = await api.call<{ id: number }>('POST', '/api/v1/tasks', {
    name: `退订跳过 ${Date.now()}`,
    task_type: 'broadcast',
    content: '周末新品上市',
    audience: { contact_ids: [byHand.id, byReply.id] },
    rate_per_minute: 6000,
  })
  await page.goto(`/tasks/${task.id}`)
  await expect(page.getByText('已完成').first()).toBeVisible({ timeout: 60_000 })
  await page.getByRole('button', { name: '刷新', exact: true }).click()
  const skipped = page.getByRole('row').filter({ hasText: byReply.nickname! })
  await expect(skipped).toContainText('已跳过')
  await expect(skipped).toContainText('已退订')
  await expect(page.getByRole('row').filter({ hasText: byHand.nickname! })).toContainText('已发送')
  expect(violations).toEqual([])
})
