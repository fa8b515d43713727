import { expect, test, type Page } from '@playwright/test'

import { adminPassword, Api } from './api'
import { expectAccessible, screenshot, signIn, watchPolicy } from './support'

/** The console's Content-Security-Policy (`api/src/console.rs`). */
const POLICY =
  "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; font-src 'self' data:; " +
  "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

/**
 * Pages served by `vite preview` carry no policy: add the server's, so the charts (ECharts) and
 * the QR code are held to it here too, not only in the embedded run.
 */
async function enforcePolicy(page: Page) {
  await page.route('**/*', async (route) => {
    if (route.request().resourceType() !== 'document') return route.continue()
    const response = await route.fetch()
    const headers = response.headers()
    headers['content-security-policy'] ??= POLICY
    await route.fulfill({ response, headers })
  })
}

/** Waits out finite animations (a dialog fading in): axe would measure colours mid-fade. */
async function settled(page: Page) {
  await page.waitForFunction(() =>
    document.getAnimations().every((a) => a.playState !== 'running' || a.effect?.getComputedTiming().iterations === Infinity),
  )
}

test('ops open an instance: accounts, charts, edit keeping the secret, maintenance, QR login', async ({ page }) => {
  const violations = watchPolicy(page)
  await enforcePolicy(page)
  const api = await Api.signIn()
  const name = `ops-detail-${Date.now()}`
  const id = await api.simInstance(name)
  await api.call('POST', `/api/v1/instances/${id}/check`)

  await signIn(page, 'admin', adminPassword)
  await page.getByRole('link', { name: '实例', exact: true }).click()
  await page.getByRole('link', { name, exact: true }).click()
  await expect(page).toHaveURL(new RegExp(`/instances/${id}$`))
  await expect(page.getByRole('heading', { name, exact: true })).toBeVisible()
  const status = page.getByTestId('instance-status')
  await expect(status).toHaveText('在线')
  await expect(page.getByTestId('instance-latency')).toContainText('ms')
  const accounts = page.getByTestId('instance-accounts').locator('tbody tr')
  await expect(accounts).toHaveCount(2)
  await expect(accounts.first()).toContainText('在线')

  // Charts: a check adds a latency sample; the chart draws on a canvas and reads out as text.
  await page.getByRole('button', { name: '立即检查' }).click()
  await expect(page.getByText(/实例在线，延迟 \d+ ms/)).toBeVisible()
  const latency = page.getByTestId('chart-latency')
  await expect(latency.locator('canvas')).toBeVisible()
  await expect(latency.getByRole('img')).toHaveAttribute('aria-label', /心跳延迟: 平均：\d+ 个数据点/)
  await expect(page.getByTestId('chart-sends').locator('canvas')).toBeVisible()
  await latency.getByRole('button', { name: '以表格查看' }).click()
  await expect(latency.getByRole('table')).toContainText('平均 (ms)')
  await latency.getByRole('button', { name: '以图表查看' }).click()
  const range = page.getByRole('radiogroup', { name: '时间范围' })
  await range.getByText('24 小时', { exact: true }).click()
  await expect(range.getByRole('radio', { name: '24 小时' })).toBeChecked()
  await expect(latency.locator('canvas')).toBeVisible()
  await range.getByText('1 小时', { exact: true }).click()
  await expect(range.getByRole('radio', { name: '1 小时' })).toBeChecked()
  await expectAccessible(page)
  await page.getByRole('heading', { name, exact: true }).scrollIntoViewIfNeeded()
  await screenshot(page, 'instance-detail')
  await latency.locator('canvas').hover()

  // Edit: the stored secret is shown as set, never filled in; saving without retyping keeps it.
  await page.getByRole('button', { name: '编辑', exact: true }).click()
  const dialog = page.getByRole('dialog', { name: '编辑实例' })
  const secret = dialog.getByRole('textbox', { name: '代理密钥' })
  await expect(secret).toHaveValue('')
  await expect(secret).toHaveAttribute('type', 'password')
  await expect(secret).toHaveAttribute('placeholder', '已设置，留空则保持不变')
  await expect(dialog.getByTestId('secret-agent_secret-stored')).toHaveText('已设置')
  const renamed = `${name}-renamed`
  await dialog.getByRole('textbox', { name: '名称' }).fill(renamed)
  await dialog.getByRole('spinbutton', { name: '心跳间隔（秒）' }).fill('12')
  await settled(page)
  await expectAccessible(page)
  await dialog.getByRole('button', { name: '保存' }).click()
  await expect(dialog).toBeHidden()
  await expect(page.getByRole('heading', { name: renamed, exact: true })).toBeVisible()
  await expect(page.getByTestId('instance-interval')).toHaveText('12')
  await expect(page.getByTestId('config-agent_secret')).toHaveText('已设置')
  await page.getByRole('button', { name: '立即检查' }).click()
  await expect(page.getByText(/实例在线，延迟 \d+ ms/).first()).toBeVisible()
  await expect(status).toHaveText('在线')

  // Maintenance on and off again.
  await page.getByRole('button', { name: '进入维护' }).click()
  await expect(status).toHaveText('维护中')
  await page.getByRole('button', { name: '结束维护' }).click()
  await expect(status).not.toHaveText('维护中')
  await expect(page.getByRole('button', { name: '进入维护' })).toBeVisible()

  // QR login: the sim answers with an address, drawn here as a QR code, and its expiry.
  await page.getByRole('button', { name: '扫码登录' }).click()
  const qrDialog = page.getByRole('dialog', { name: '扫码登录账号' })
  await qrDialog.getByLabel('登录账号').selectOption({ index: 1 })
  await qrDialog.getByRole('button', { name: '获取二维码' }).click()
  const image = qrDialog.getByRole('img', { name: '登录二维码' })
  await expect(image).toBeVisible()
  await expect(image).toHaveAttribute('src', /^data:image\/png;base64,/)
  await expect(qrDialog).toContainText(/有效期至 .+（剩余 \d+ 秒）/)
  await settled(page)
  await expectAccessible(page)
  expect(violations).toEqual([])
})

test('ops see the health overview refresh and open an instance from it', async ({ page }) => {
  const violations = watchPolicy(page)
  await enforcePolicy(page)
  const api = await Api.signIn()
  const name = `ops-health-${Date.now()}`
  const id = await api.simInstance(name)
  await api.call('POST', `/api/v1/instances/${id}/check`)

  await signIn(page, 'admin', adminPassword)
  await page.getByRole('link', { name: '健康总览', exact: true }).click()
  await expect(page.getByRole('heading', { name: '健康总览', exact: true })).toBeVisible()
  const instances = page.getByTestId('health-block-instances')
  await expect(instances).toContainText('在线')
  await expect(page.getByTestId('health-block-accounts')).toContainText('在线')
  await expect(page.getByTestId('health-queue')).toContainText('个接收者待发送')
  const row = page.getByTestId('health-instances').getByRole('row').filter({ hasText: name })
  await expect(row).toContainText('在线')

  // A count filters the table by that status; the refresh keeps it.
  await instances.getByRole('button', { name: /维护中/ }).click()
  await expect(row).toBeHidden()
  await page.getByRole('radiogroup', { name: '按状态筛选实例' }).getByText('全部', { exact: true }).click()
  await expect(row).toBeVisible()
  await page.getByRole('button', { name: '刷新' }).click()
  await expect(row).toBeVisible()
  await expectAccessible(page)
  await screenshot(page, 'health')

  await row.getByRole('link', { name }).click()
  await expect(page).toHaveURL(new RegExp(`/instances/${id}$`))
  await expect(page.getByTestId('instance-status')).toHaveText('在线')
  expect(violations).toEqual([])
})

test('a viewer of instances sees the detail page without the controls they may not use', async ({ page }) => {
  const api = await Api.signIn()
  const name = `ops-viewer-${Date.now()}`
  const id = await api.simInstance(name)
  const viewer = `viewer_${Date.now()}`
  const password = 'Viewer-Passw0rd-2026!'
  await api.userWith(viewer, password, ['instances:read', 'accounts:read', 'profile:self'])

  await signIn(page, viewer, password)
  await page.goto(`/instances/${id}`)
  await expect(page.getByRole('heading', { name, exact: true })).toBeVisible()
  await expect(page.getByTestId('instance-accounts').locator('tbody tr')).toHaveCount(2)
  for (const action of ['编辑', '立即检查', '同步', '进入维护', '扫码登录']) {
    await expect(page.getByRole('button', { name: action, exact: true })).toHaveCount(0)
  }
  await expect(page.getByTestId('chart-latency')).toHaveCount(0)
  await expect(page.getByTestId('config-agent_secret')).toHaveText('已设置')

  await page.getByRole('button', { name: 'English' }).click()
  await expect(page.getByRole('heading', { name: 'Configuration' })).toBeVisible()
  await expect(page.getByRole('columnheader', { name: 'Logged in' })).toBeVisible()
  await expectAccessible(page)
})
