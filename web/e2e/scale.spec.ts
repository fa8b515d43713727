import { expect, type Page, test } from '@playwright/test'

import { adminPassword } from './api'
import { signIn } from './support'

// The console over a large contact base, timed in the browser: run by `scripts/console-scale`
// (which seeds WEWORK_SCALE contacts with `wework bench contacts`), skipped otherwise. Each
// figure is from the user's action to the rows drawn (checked every animation frame), so it
// holds the API's answer, the transfer and the rendering. Lines `SCALE <name> <ms>` are the
// output; the script turns them into a table.

const scale = Number(process.env.WEWORK_SCALE ?? 0)
test.skip(!scale, 'run by scripts/console-scale')

const firstRowId = (page: Page) =>
  page.evaluate(() => document.querySelector('.el-table__body tbody tr')?.textContent ?? '')

/** Milliseconds from `act` until the contact table shows `rows` rows (at least) that differ from
 * `before` (with `rows` 0, an empty table counts). */
async function timed(page: Page, name: string, act: () => Promise<unknown>, before = '', rows = 1) {
  const start = Date.now()
  await act()
  await page.waitForFunction(
    ({ before, rows }) => {
      // The rows are drawn (the loading mask's fade-out after them is not waited for).
      const body = document.querySelectorAll('.el-table__body tbody tr')
      const first = body[0]?.textContent ?? ''
      return body.length >= rows && first !== before
    },
    { before, rows },
    { polling: 'raf', timeout: 60_000 },
  )
  const ms = Date.now() - start
  console.log(`SCALE ${name} ${ms}`)
  return ms
}

test(`contacts, filters and the broadcast estimate over ${scale} contacts`, async ({ page }) => {
  test.setTimeout(600_000)
  await signIn(page, 'admin', adminPassword)
  await timed(page, 'contacts: first page (menu click to 50 rows)', () => page.getByRole('link', { name: '客户', exact: true }).click(), '', 50)

  for (let i = 1; i <= 10; i++) {
    const before = await firstRowId(page)
    await timed(page, `contacts: next page ${i}`, () => page.getByRole('button', { name: /下一页/ }).click(), before, 50)
  }

  const keyword = page.getByRole('textbox', { name: '昵称、备注、手机号' })
  const search = page.getByRole('button', { name: '搜索', exact: true })
  let before = await firstRowId(page)
  await keyword.fill('李')
  await timed(page, 'contacts: keyword, common (李)', () => search.click(), before)

  await keyword.fill('')
  const tagsAll = page.getByRole('textbox', { name: '包含全部标签' })
  for (const tag of ['tag1', 'tag2']) {
    await tagsAll.fill(tag)
    await page.getByRole('button', { name: tag, exact: true }).click()
  }
  before = await firstRowId(page)
  await timed(page, 'contacts: tags all (tag1, tag2)', () => search.click(), before)

  const first = page.locator('.el-table__body tbody tr').first()
  const start = Date.now()
  await first.click()
  await expect(page.getByRole('dialog')).toBeVisible()
  console.log(`SCALE contacts: detail drawer ${Date.now() - start}`)

  await page.goto('/tasks/new')
  const estimateStart = Date.now()
  await expect(page.getByTestId('estimate-sendable')).toHaveText(/[1-9]/, { timeout: 120_000 })
  console.log(`SCALE wizard: estimate of all contacts ${Date.now() - estimateStart}`)

  await page.goto('/contacts')
  await expect(page.locator('.el-table__body tbody tr')).toHaveCount(50)
  before = await firstRowId(page)
  await keyword.fill('王99999')
  await timed(page, 'contacts: keyword, rare (王99999, a full scan)', () => search.click(), before, 0)
})
