import { describe, expect, it } from 'vitest'

import { useKeysetList } from './useKeysetList'

/** 7 rows, pages of 3, newest first, cursors are the last id shown — like the API. */
function fakeApi(calls: (string | undefined)[]) {
  const rows = [7, 6, 5, 4, 3, 2, 1]
  return async (cursor: string | undefined) => {
    calls.push(cursor)
    const after = rows.filter((id) => cursor === undefined || id < Number(cursor))
    const items = after.slice(0, 3)
    const more = after.length > 3
    return { items, next_cursor: more ? String(items[items.length - 1]) : null }
  }
}

describe('useKeysetList', () => {
  it('walks forward and back with the cursors the API gave', async () => {
    const calls: (string | undefined)[] = []
    const list = useKeysetList(fakeApi(calls))
    await list.load()
    expect(list.items.value).toEqual([7, 6, 5])
    expect(list.hasPrevious.value).toBe(false)
    await list.next()
    expect(list.items.value).toEqual([4, 3, 2])
    await list.next()
    expect(list.items.value).toEqual([1])
    expect(list.hasNext.value).toBe(false)
    expect(list.pageNumber.value).toBe(3)
    await list.previous()
    expect(list.items.value).toEqual([4, 3, 2])
    await list.previous()
    expect(list.items.value).toEqual([7, 6, 5])
    expect(list.pageNumber.value).toBe(1)
    expect(calls).toEqual([undefined, '5', '2', '5', undefined])
  })

  it('drops an answer overtaken by a newer load', async () => {
    let release: (() => void) | undefined
    let first = true
    const list = useKeysetList(async () => {
      if (first) {
        first = false
        await new Promise<void>((resolve) => (release = resolve))
        return { items: ['stale'], next_cursor: null }
      }
      return { items: ['fresh'], next_cursor: null }
    })
    const slow = list.load()
    await list.load()
    release?.()
    await slow
    expect(list.items.value).toEqual(['fresh'])
    expect(list.loading.value).toBe(false)
  })

  it('keeps the page shown when a page fails, and says why', async () => {
    let fail = false
    const list = useKeysetList(async (cursor) => {
      if (fail) throw new Error('down')
      return { items: [cursor ?? 'first'], next_cursor: 'c1' }
    })
    await list.load()
    fail = true
    await list.next()
    expect(list.items.value).toEqual(['first'])
    expect(list.error.value?.message).toBe('down')
    expect(list.pageNumber.value).toBe(1)
  })
})
