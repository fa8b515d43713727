// The workbench's picture of the desk, kept current from the live events: every conversation it
// knows by id, split into the agent's own and their groups' queue. Pure functions, so what an
// event does to the lists is tested without a browser.
import type { Schemas } from '../api/client'

export type Conversation = Schemas['ConversationView']
export type DeskEvent = Schemas['DeskEvent']
export type DeskMessage = Schemas['DeskMessageView']

/** Conversations by id. */
export type Inbox = Map<number, Conversation>

/** Takes a conversation event's new state into the inbox; other events change nothing here. */
export function applyEvent(inbox: Inbox, event: DeskEvent): Inbox {
  if (!event.kind.startsWith('conversation.')) return inbox
  const next = new Map(inbox)
  const conversation = event.data as unknown as Conversation
  if (conversation && typeof conversation.id === 'number') next.set(conversation.id, conversation)
  return next
}

/** A message event's effect on its conversation: newest message time, unread count for visitors' messages. */
export function applyMessage(inbox: Inbox, event: DeskEvent, reading: number | null): Inbox {
  if (!event.kind.startsWith('message.') || event.conversation_id == null) return inbox
  const current = inbox.get(event.conversation_id)
  if (!current) return inbox
  const message = event.data as unknown as DeskMessage
  const next = new Map(inbox)
  const incoming = event.kind === 'message.received'
  next.set(current.id, {
    ...current,
    last_message_at: message.created_at,
    unread: incoming && reading !== current.id ? current.unread + 1 : current.unread,
  })
  return next
}

/** The agent's open conversations (newest activity first) and their groups' queue (longest waiting first). */
export function split(inbox: Inbox, agentId: number | null, groups: number[]) {
  const all = [...inbox.values()]
  const mine = all
    .filter((c) => c.agent_id != null && c.agent_id === agentId && c.state !== 'closed')
    .sort((a, b) => b.last_message_at.localeCompare(a.last_message_at))
  const queue = all
    .filter((c) => c.state === 'queued' && groups.includes(c.skill_group_id))
    .sort((a, b) => a.queued_at.localeCompare(b.queued_at))
  return { mine, queue }
}

/** Adds a message to a chat's list (newest last) unless it is there already. */
export function appendMessage(messages: DeskMessage[], message: DeskMessage): DeskMessage[] {
  if (messages.some((m) => m.id === message.id)) return messages
  return [...messages, message].sort((a, b) => a.id - b.id)
}
