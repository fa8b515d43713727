// How tags read in the console, and which of a contact's tags the console may change: local tags
// are ours, synced ones (WeCom corp tags) belong to their instance and are read-only here.
import type { Schemas } from '../api/client'
import type { TagChoice } from './contactFilters'

type Named = Pick<Schemas['TagRef'], 'group_name' | 'name'>

/** `客户等级/VIP`, or just the name for a tag outside any group. */
export function tagText(tag: Named): string {
  return tag.group_name ? `${tag.group_name}/${tag.name}` : tag.name
}

/** A tag for a picker; a synced tag names its instance, since each instance has its own. */
export function tagChoiceOf(tag: Schemas['TagView'], instanceName: (id: number) => string | undefined): TagChoice {
  const text = tagText(tag)
  if (tag.instance_id === null || tag.instance_id === undefined) return { id: tag.id, label: text }
  return { id: tag.id, label: `${text} · ${instanceName(tag.instance_id) ?? `#${tag.instance_id}`}` }
}

/** The tag typed exactly (its name or group/name, any case), to pick on Enter instead of creating one. */
export function exactTag<T extends Named>(tags: T[], typed: string): T | undefined {
  const want = typed.trim().toLowerCase()
  if (!want) return undefined
  return tags.find((t) => t.name.toLowerCase() === want || tagText(t).toLowerCase() === want)
}

/** A contact's tags split into the synced ones (ids in `synced`) and the local ones it may edit. */
export function splitTags(tags: Schemas['TagRef'][], synced: ReadonlySet<number>) {
  return {
    synced: tags.filter((t) => synced.has(t.id)),
    local: tags.filter((t) => !synced.has(t.id)),
  }
}

/** Adds a choice once; the list keeps its order. */
export function withChoice(list: TagChoice[], choice: TagChoice): TagChoice[] {
  return list.some((c) => c.id === choice.id) ? list : [...list, choice]
}
