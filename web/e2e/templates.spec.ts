// Message templates: the editor with typed variables and the server's live preview of what is
// typed (saved or not) for a real contact, the list (find, edit, delete), and the broadcast
// wizard's preview of a template.
import { expect, test, type Page } from '@playwright/test'

import { Api, adminPassword } from './api'
import { expectAccessible, screenshot, signIn, watchPolicy } from './support'

type Contact = { id: number; nickname: string | null; wxid: string }

/** A synced sim instance and one of its contacts whose nickname is not the sample data's (王伟). */
async function simContact(api: Api, prefix: string): Promise<Contact> {
  await api.simInstance(`${prefix}-${Date.now()}`)
  const page = await api.call<{ items: Contact[] }>('GET', '/api/v1/contacts?limit=50')
  const contact = page.items.find((c) => c.nickname && c.nickname !== '王伟')
  if (!contact) throw new Error('no sim contact with a nickname')
  return contact
}

async function pickContact(page: Page, nickname: string) {
  await page.getByRole('textbox', { name: '搜索客户' }).fill(nickname)
  await page.getByRole('radio', { name: nickname }).first().check()
}

test('a template with typed variables: server errors, live preview for a contact, find, edit, delete', async ({ page }) => {
  const violations = watchPolicy(page)
  const api = await Api.signIn()
  const contact = await simContact(api, 'templates-e2e')
  const nickname = contact.nickname!
  const name = `会员券提醒${Date.now()}`
  // Neighbours in the list, as an operator's would look.
  await api.call('POST', '/api/v1/templates', {
    name: '双十一预热',
    category: 'marketing',
    message_type: 'link',
    content: '{{ name }}您好！{{ shop }}会员价今晚开抢',
    payload: { title: '{{ shop }}双十一', url: 'https://example.com/sale' },
    variables: [{ name: 'shop', type: 'string', required: true }],
  })
  const welcome = await api.call<{ id: number }>('POST', '/api/v1/templates', {
    name: '新客欢迎语',
    message_type: 'text',
    content: '{{ nickname }}，欢迎关注！',
  })
  await api.call('PATCH', `/api/v1/templates/${welcome.id}`, { status: 'disabled' })

  await signIn(page, 'admin', adminPassword)
  await page.getByRole('link', { name: '消息模板' }).click()
  await expect(page.getByRole('heading', { name: '消息模板' })).toBeVisible()
  await page.getByRole('button', { name: '新建模板' }).click()
  await expect(page.getByRole('heading', { name: '新建模板' })).toBeVisible()
  await expect(page.getByTestId('template-preview')).toContainText('输入模板内容后')

  await page.getByRole('textbox', { name: '名称', exact: true }).fill(name)
  await page.getByRole('textbox', { name: '模板内容' }).fill('{{ nickname }}您好，{{ coupon }}满 {{ amount }} 元可用')
  await page.getByRole('button', { name: '添加变量' }).click()
  await page.getByRole('button', { name: '添加变量' }).click()
  await page.getByRole('textbox', { name: '变量 1 变量名' }).fill('coupon')
  await page.getByRole('checkbox', { name: '变量 1 必填' }).check()
  // A name the API refuses: it starts with a digit.
  await page.getByRole('textbox', { name: '变量 2 变量名' }).fill('1amount')
  await page.getByRole('combobox', { name: '变量 2 类型' }).selectOption('number')
  await page.getByRole('spinbutton', { name: '变量 2 默认值' }).fill('50')
  await page.getByRole('spinbutton', { name: '变量 2 默认值' }).press('Tab')
  await page.getByRole('button', { name: '保存' }).click()

  // The server names the variable row and the text that reads the undeclared `amount` (beside
  // the field, and in the preview, which checks the draft as a save does).
  await expect(page.getByRole('group', { name: '变量 2' })).toContainText('not starting with a digit')
  await expect(page.locator('.el-form-item__error').filter({ hasText: 'uses `amount`' })).toBeVisible()
  await expect(page.getByTestId('template-preview')).toContainText('uses `amount`')
  await expect(page.getByRole('heading', { name: '新建模板' })).toBeVisible()
  await page.getByRole('textbox', { name: '变量 2 变量名' }).fill('amount')
  await page.getByRole('button', { name: '保存' }).click()
  await expect(page.getByRole('heading', { name: `编辑模板：${name}` })).toBeVisible()
  await expect(page).toHaveURL(/edit=\d+/)

  // Saved: the server renders it, first with sample data, then for the contact picked.
  const preview = page.getByTestId('template-preview')
  await expect(preview).toContainText('王伟您好，<coupon>满 50 元可用')
  await pickContact(page, nickname)
  await expect(preview).toContainText(`${nickname}您好，<coupon>满 50 元可用`)
  await page.getByRole('textbox', { name: 'coupon', exact: true }).fill('双十一券')
  await expect(preview).toContainText(`${nickname}您好，双十一券满 50 元可用`)
  await expectAccessible(page)
  await screenshot(page, 'template-editor')

  // An edit shows before it is saved, and stays once saved.
  await page.getByRole('textbox', { name: '模板内容' }).fill('{{ nickname }}您好，{{ coupon }}满 {{ amount }} 元可用，欢迎光临')
  await expect(preview).toContainText(`${nickname}您好，双十一券满 50 元可用，欢迎光临`)
  await page.getByRole('button', { name: '保存' }).click()
  await expect(page.getByText('操作成功')).toBeVisible()
  await expect(preview).toContainText(`${nickname}您好，双十一券满 50 元可用，欢迎光临`)

  // The list finds it by keyword.
  await page.getByRole('button', { name: '返回' }).first().click()
  await expect(page.getByRole('heading', { name: '消息模板' })).toBeVisible()
  await expect(page.getByRole('row').filter({ hasText: '新客欢迎语' })).toContainText('已停用')
  await expectAccessible(page)
  await screenshot(page, 'templates')
  await page.getByRole('textbox', { name: '名称或内容' }).fill(name)
  await page.getByRole('button', { name: '搜索' }).click()
  const row = page.getByRole('row').filter({ hasText: name })
  await expect(row).toHaveCount(1)
  await expect(page.getByRole('row').filter({ hasText: '新客欢迎语' })).toHaveCount(0)
  await expect(row).toContainText('coupon')
  await expect(row).toContainText('amount')

  // Edit from the list.
  await row.getByRole('button', { name: '编辑' }).click()
  await expect(page.getByRole('heading', { name: `编辑模板：${name}` })).toBeVisible()
  await page.getByRole('textbox', { name: '名称', exact: true }).fill(`${name}（新版）`)
  await page.getByRole('button', { name: '保存' }).click()
  await expect(page.getByRole('heading', { name: `编辑模板：${name}（新版）` })).toBeVisible()
  await page.getByRole('button', { name: '返回' }).first().click()
  const renamed = page.getByRole('row').filter({ hasText: `${name}（新版）` })
  await expect(renamed).toHaveCount(1)

  // Delete, after confirming (the dialog speaks the console's language).
  await renamed.getByRole('button', { name: '删除' }).click()
  await page.getByRole('dialog', { name: '删除模板' }).getByRole('button', { name: '确认' }).click()
  await expect(page.getByRole('row').filter({ hasText: name })).toHaveCount(0)
  expect(violations).toEqual([])
})

test('a new template previews as it is typed, before it is ever saved', async ({ page }) => {
  const violations = watchPolicy(page)
  const api = await Api.signIn()
  const contact = await simContact(api, 'template-draft-e2e')
  const nickname = contact.nickname!
  const name = `到店礼草稿${Date.now()}`
  // Nothing is saved while typing: no template is created or changed.
  const writes: string[] = []
  page.on('request', (request) => {
    const path = new URL(request.url()).pathname
    if (request.method() !== 'GET' && /^\/api\/v1\/templates(\/\d+)?$/.test(path)) writes.push(`${request.method()} ${path}`)
  })

  await signIn(page, 'admin', adminPassword)
  await page.goto('/templates?edit=new')
  await expect(page.getByRole('heading', { name: '新建模板' })).toBeVisible()
  const preview = page.getByTestId('template-preview')
  await expect(preview).toContainText('输入模板内容后')

  await page.getByRole('textbox', { name: '名称', exact: true }).fill(name)
  const content = page.getByRole('textbox', { name: '模板内容' })
  await content.fill('{{ nickname }}，新品到店')
  await expect(preview).toContainText('王伟，新品到店')
  // Keystroke by keystroke: the preview catches up once typing pauses.
  await content.pressSequentially('，凭此消息领取{{ gift }}', { delay: 20 })
  // `gift` is not declared yet: the server says so, as a save would.
  await expect(preview).toContainText('服务器无法渲染此模板')
  await expect(preview).toContainText('gift')
  await page.getByRole('button', { name: '添加变量' }).click()
  await page.getByRole('textbox', { name: '变量 1 变量名' }).fill('gift')
  await page.getByRole('textbox', { name: '变量 1 默认值' }).fill('帆布袋')
  await expect(preview).toContainText('王伟，新品到店，凭此消息领取帆布袋')
  await expect(preview).not.toContainText('服务器无法渲染此模板')

  // For a real contact, with a value typed for the variable.
  await pickContact(page, nickname)
  await expect(preview).toContainText(`${nickname}，新品到店，凭此消息领取帆布袋`)
  await page.getByRole('textbox', { name: 'gift', exact: true }).fill('保温杯')
  await expect(preview).toContainText(`${nickname}，新品到店，凭此消息领取保温杯`)
  await expect(page.getByRole('heading', { name: '新建模板' })).toBeVisible()
  await expectAccessible(page)
  await screenshot(page, 'template-draft-preview')
  expect(writes).toEqual([])
  const found = await api.call<{ items: unknown[] }>('GET', `/api/v1/templates?q=${encodeURIComponent(name)}`)
  expect(found.items).toHaveLength(0)
  expect(violations).toEqual([])
})

test('the broadcast wizard previews the chosen template for a contact with the values typed', async ({ page }) => {
  const violations = watchPolicy(page)
  const api = await Api.signIn()
  const contact = await simContact(api, 'wizard-template-e2e')
  const nickname = contact.nickname!
  const name = `周末特惠模板${Date.now()}`
  await api.call('POST', '/api/v1/templates', {
    name,
    message_type: 'text',
    content: '{{ nickname }}，{{ shop }}周末特惠',
    variables: [{ name: 'shop', type: 'string', required: true }],
  })

  await signIn(page, 'admin', adminPassword)
  await page.goto('/tasks/new')
  await expect(page.getByRole('heading', { name: '新建群发' })).toBeVisible()
  await page.getByRole('button', { name: '下一步' }).click()
  await page.getByRole('combobox', { name: '模板' }).selectOption({ label: name })
  await page.getByRole('textbox', { name: 'shop', exact: true }).fill('青禾旗舰店')
  const preview = page.getByTestId('template-preview')
  await expect(preview).toContainText('王伟，青禾旗舰店周末特惠')
  await pickContact(page, nickname)
  await expect(preview).toContainText(`${nickname}，青禾旗舰店周末特惠`)
  await expectAccessible(page)

  // Back to inline text: the template's variables go with it.
  await page.getByRole('combobox', { name: '模板' }).selectOption({ label: '不使用模板（直接输入文本）' })
  await expect(page.getByRole('textbox', { name: '消息文本' })).toBeVisible()
  expect(violations).toEqual([])
})
