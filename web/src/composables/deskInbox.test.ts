import { describe, expect, it } from 'vitest'

import { appendMessage, applyEvent, applyMessage, split, type Conversation, type DeskEvent, type DeskMessage, type Inbox } from './deskInbox'

function conversation(id: number, patch: Partial<Conversation> = {}): Conversation {
  return {
    id,
    channel_id: 1,
    skill_group_id: 1,
    agent_id: null,
    state: 'queued',
    visitor: { id, external_id: `wx${id}` },
    opened_at: '2026-12-03T10:00:00Z',
    queued_at: `2026-12-03T10:0${id}:00Z`,
    last_visitor_message_at: '2026-12-03T10:00:00Z',
    last_message_at: `2026-12-03T10:0${id}:00Z`,
    replies_since_visitor: 0,
    unread: 0,
    ...patch,
  } as Conversation
}

function event(kind: string, data: unknown, conversationId?: number): DeskEvent {
  return { id: 1, kind, data: data as DeskEvent['data'], at: '2026-12-03T10:00:00Z', conversation_id: conversationId ?? null } as DeskEvent
}

describe('the desk inbox', () => {
  it('moves a conversation from the queue to its agent, and out once closed', () => {
    let inbox: Inbox = new Map()
    inbox = applyEvent(inbox, event('conversation.opened', conversation(1)))
    inbox = applyEvent(inbox, event('conversation.opened', conversation(2)))
    expect(split(inbox, 7, [1]).queue.map((c) => c.id)).toEqual([1, 2])
    inbox = applyEvent(inbox, event('conversation.assigned', conversation(2, { state: 'assigned', agent_id: 7 })))
    expect(split(inbox, 7, [1])).toMatchObject({ mine: [{ id: 2 }], queue: [{ id: 1 }] })
    expect(split(inbox, 8, [2]).queue).toEqual([])
    inbox = applyEvent(inbox, event('conversation.closed', conversation(2, { state: 'closed', agent_id: 7 })))
    expect(split(inbox, 7, [1]).mine).toEqual([])
  })

  it('counts visitors messages as unread unless the chat is open', () => {
    let inbox: Inbox = new Map([[3, conversation(3, { state: 'active', agent_id: 7 })]])
    const message = { id: 9, created_at: '2026-12-03T11:00:00Z' } as DeskMessage
    inbox = applyMessage(inbox, event('message.received', message, 3), null)
    expect(inbox.get(3)).toMatchObject({ unread: 1, last_message_at: '2026-12-03T11:00:00Z' })
    inbox = applyMessage(inbox, event('message.received', message, 3), 3)
    expect(inbox.get(3)?.unread).toBe(1)
    inbox = applyMessage(inbox, event('message.sent', message, 3), null)
    expect(inbox.get(3)?.unread).toBe(1)
  })

  it('keeps a chat free of repeats and in order', () => {
    const a = { id: 2 } as DeskMessage
    const b = { id: 1 } as DeskMessage
    expect(appendMessage(appendMessage(appendMessage([], a), b), a).map((m) => m.id)).toEqual([1, 2])
  })
})
