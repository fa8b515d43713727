// What every browser test needs: sign-in, the accessibility and Content-Security-Policy checks,
// and screenshots for docs/console.md when WEWORK_SCREENSHOTS names a directory.
import AxeBuilder from '@axe-core/playwright'
import { expect, type Browser, type Locator, type Page } from '@playwright/test'

const shots = process.env.WEWORK_SCREENSHOTS

/** Fails the test on any Content-Security-Policy violation the page reports. */
export function watchPolicy(page: Page): string[] {
  const violations: string[] = []
  page.on('console', (message) => {
    if (message.type() === 'error' && /Content Security Policy/i.test(message.text())) violations.push(message.text())
  })
  return violations
}

export async function signIn(page: Page, login: string, password: string) {
  await page.goto('/')
  await expect(page).toHaveURL(/\/sign-in/)
  await page.locator('#login').fill(login)
  await page.locator('#password').fill(password)
  await page.getByRole('button', { name: '登录' }).click()
  await expect(page.getByTestId('user-menu')).toBeVisible()
}

/**
 * No serious or critical axe-core violation on the page as shown. Toasts and every finite CSS
 * transition (a dialog fading in, say) are waited out first: mid-animation, text is partly
 * transparent and its contrast would be measured against a half-drawn background.
 */
export async function expectAccessible(page: Page) {
  await expect(page.locator('.el-message')).toHaveCount(0, { timeout: 10_000 })
  await page.waitForFunction(() =>
    document.getAnimations().every((a) => a.playState !== 'running' || a.effect?.getComputedTiming().endTime === Infinity),
  )
  const result = await new AxeBuilder({ page }).analyze()
  const serious = result.violations
    .filter((v) => v.impact === 'serious' || v.impact === 'critical')
    .map((v) => `${v.id}: ${v.nodes.map((n) => n.target.join(' ')).join(', ')}`)
  expect(serious).toEqual([])
}

export async function screenshot(page: Page, name: string) {
  if (shots) await page.screenshot({ path: `${shots}/${name}.png`, fullPage: false })
}

/** An agent signed in on the workbench in a browser of their own, online (at `baseURL` when given). */
export async function agentPage(browser: Browser, username: string, password: string, baseURL?: string): Promise<Page> {
  const page = await (await browser.newContext(baseURL ? { baseURL } : {})).newPage()
  await signIn(page, username, password)
  await page.getByRole('link', { name: '客服工作台', exact: true }).click()
  await expect(page.getByRole('heading', { name: '客服工作台' })).toBeVisible()
  await page.getByTestId('my-status').getByText('在线', { exact: true }).click()
  await expect(page.getByText('实时', { exact: true })).toBeVisible()
  return page
}

/** Picks the option that names `text` in a native select: which place an option has depends on
 * who else the shared server holds (other tests' agents), its label does not. */
export async function selectNaming(select: Locator, text: string) {
  const value = await select.locator('option', { hasText: text }).getAttribute('value')
  if (value === null) throw new Error(`no option names ${text}`)
  await select.selectOption(value)
}
