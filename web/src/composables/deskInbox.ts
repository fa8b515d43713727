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
  // A recall changes a message already counted.
  if ((event.kind !== 'message.received' && event.kind !== 'message.sent') || event.conversation_id == null) return inbox
  const current = inbox.get(event.conversation_id)
  if (!current) return inbox
  const message = event.data as unknown as DeskMessage
  const next = new Map(inbox)
  const incoming = event.kind === 'message.received'
  next.set(current.id, {
    ...current,
    last_message_at: message.created_at,
    unread: incoming && reading !== current.id ? current.unread + 1 : current.unread,
    members: current.members.map((m) => (incoming || m.agent_id !== message.agent_id ? { ...m, unread: m.unread + 1 } : m)),
    ...windowAfter(current, message, incoming),
  })
  return next
}

const WINDOW_HOURS = 48
const WINDOW_REPLIES = 5

/** The count of replies since the visitor wrote (and a 微信客服 send window) after a message, as
 * the server keeps them: the visitor's message reopens the window, each message out takes one. */
function windowAfter(current: Conversation, message: DeskMessage, incoming: boolean): Partial<Conversation> {
  // What a receptionist types in the WeCom client is not the API's to count.
  if (message.servicer_userid) return {}
  const replies = incoming ? 0 : current.replies_since_visitor + 1
  if (!current.send_window) return { replies_since_visitor: replies }
  const closesAt = incoming
    ? new Date(new Date(message.created_at).getTime() + WINDOW_HOURS * 3600_000).toISOString()
    : current.send_window.closes_at
  return { replies_since_visitor: replies, send_window: { closes_at: closesAt, replies_left: Math.max(0, WINDOW_REPLIES - replies) } }
}

/** Whether the agent serves the conversation as a colleague of its agent. */
export function isMember(conversation: Conversation, agentId: number | null): boolean {
  return agentId != null && conversation.members.some((m) => m.agent_id === agentId)
}

/** What the agent has not read: their own count as a member, else the conversation's. */
export function unreadFor(conversation: Conversation, agentId: number | null): number {
  const member = conversation.members.find((m) => m.agent_id === agentId)
  return member ? member.unread : conversation.unread
}

/** The agent's open conversations (newest activity first), those they help a colleague with,
 * and their groups' queue (longest waiting first). */
export function split(inbox: Inbox, agentId: number | null, groups: number[]) {
  const all = [...inbox.values()]
  const byActivity = (a: Conversation, b: Conversation) => b.last_message_at.localeCompare(a.last_message_at)
  const mine = all.filter((c) => c.agent_id != null && c.agent_id === agentId && c.state !== 'closed').sort(byActivity)
  const assisting = all.filter((c) => c.agent_id !== agentId && c.state !== 'closed' && isMember(c, agentId)).sort(byActivity)
  const queue = all
    .filter((c) => c.state === 'queued' && groups.includes(c.skill_group_id))
    .sort((a, b) => a.queued_at.localeCompare(b.queued_at))
  return { mine, assisting, queue }
}

/** Adds a message to a chat's list (newest last), or takes its newer state (a recall) in place. */
export function appendMessage(messages: DeskMessage[], message: DeskMessage): DeskMessage[] {
  if (messages.some((m) => m.id === message.id)) return messages.map((m) => (m.id === message.id ? message : m))
  return [...messages, message].sort((a, b) => a.id - b.id)
}

/** Where a 微信客服 conversation stands with WeCom's send window (48 hours after the visitor's
 * last message, 5 messages until they write again); `null` on other channels. */
export type SendWindowState = { kind: 'open'; left: number; closesAt: string } | { kind: 'waiting' } | { kind: 'expired' }

export function sendWindowState(conversation: Conversation, now: Date): SendWindowState | null {
  const window = conversation.send_window
  if (!window) return null
  if (window.replies_left <= 0) return { kind: 'waiting' }
  if (new Date(window.closes_at).getTime() <= now.getTime()) return { kind: 'expired' }
  return { kind: 'open', left: window.replies_left, closesAt: window.closes_at }
}
