// Tag look-ups for the pickers: search, create a local tag on the fly, and the synced tags of an
// instance (to tell which of a contact's tags are read-only).
import { api, ok, type Schemas } from '../api/client'

/** Tags matching `q`; `localOnly` drops synced ones (from a larger page, as they may crowd the first). */
export async function searchTags(q: string, localOnly: boolean): Promise<Schemas['TagView'][]> {
  const limit = localOnly ? 200 : 50
  const page = await ok(api.GET('/api/v1/tags', { params: { query: { q: q.trim() || undefined, limit } } }))
  return localOnly ? page.items.filter((t) => t.instance_id === null || t.instance_id === undefined) : page.items
}

export function createTag(name: string): Promise<Schemas['TagView']> {
  return ok(api.POST('/api/v1/tags', { body: { name: name.trim() } }))
}

/** Ids of the tags synced from an instance (every page; corp tags number in the hundreds). */
export async function syncedTagIds(instanceId: number): Promise<Set<number>> {
  const ids = new Set<number>()
  let cursor: string | undefined
  for (let pages = 0; pages < 20; pages++) {
    const page = await ok(api.GET('/api/v1/tags', { params: { query: { instance_id: instanceId, cursor, limit: 200 } } }))
    for (const tag of page.items) ids.add(tag.id)
    if (!page.next_cursor) break
    cursor = page.next_cursor
  }
  return ids
}
