import { describe, expect, it } from 'vitest'

import { appendMessage, applyEvent, applyMessage, sendWindowState, split, unreadFor, type Conversation, type DeskEvent, type DeskMessage, type Inbox } from './deskInbox'

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
    members: [],
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

describe('the 微信客服 send window', () => {
  const now = new Date('2026-12-03T12:00:00Z')

  it('is absent on other channels', () => {
    expect(sendWindowState(conversation(1), now)).toBeNull()
  })

  it('counts the replies left until it closes', () => {
    const open = conversation(1, { send_window: { closes_at: '2026-12-05T10:00:00Z', replies_left: 3 } })
    expect(sendWindowState(open, now)).toEqual({ kind: 'open', left: 3, closesAt: '2026-12-05T10:00:00Z' })
  })

  it('follows the messages: each reply takes one, the visitor\'s message reopens it', () => {
    const open = conversation(1, { send_window: { closes_at: '2026-12-05T10:00:00Z', replies_left: 5 } })
    const sent = { id: 9, conversation_id: 1, direction: 'out', msgtype: 'text', content: 'hi', created_at: '2026-12-03T12:00:00Z' }
    let inbox: Inbox = new Map([[1, open]])
    inbox = applyMessage(inbox, event('message.sent', sent, 1), 1)
    expect(inbox.get(1)?.send_window?.replies_left).toBe(4)
    expect(inbox.get(1)?.replies_since_visitor).toBe(1)
    const heard = { ...sent, id: 10, direction: 'in', created_at: '2026-12-04T08:00:00Z' }
    inbox = applyMessage(inbox, event('message.received', heard, 1), 1)
    expect(inbox.get(1)?.send_window).toEqual({ closes_at: '2026-12-06T08:00:00.000Z', replies_left: 5 })
  })

  it('leaves out what a receptionist types in the WeCom client, and a recall', () => {
    const open = conversation(1, { send_window: { closes_at: '2026-12-05T10:00:00Z', replies_left: 5 } })
    const typed = { id: 9, conversation_id: 1, direction: 'out', msgtype: 'text', content: '店长在此', servicer_userid: 'zhangsan', created_at: '2026-12-03T12:00:00Z' }
    let inbox: Inbox = new Map([[1, open]])
    inbox = applyMessage(inbox, event('message.sent', typed, 1), 1)
    expect(inbox.get(1)).toMatchObject({ replies_since_visitor: 0, send_window: { replies_left: 5 }, last_message_at: typed.created_at })
    const before = inbox
    inbox = applyMessage(inbox, event('message.recalled', { ...typed, recalled_at: '2026-12-03T12:01:00Z' }, 1), 1)
    expect(inbox).toBe(before)
  })

  it('waits for the visitor after five replies, and expires after 48 hours', () => {
    const spent = conversation(1, { send_window: { closes_at: '2026-12-05T10:00:00Z', replies_left: 0 } })
    expect(sendWindowState(spent, now)).toEqual({ kind: 'waiting' })
    const late = conversation(1, { send_window: { closes_at: '2026-12-03T11:59:59Z', replies_left: 5 } })
    expect(sendWindowState(late, now)).toEqual({ kind: 'expired' })
  })
})

describe('the chat history', () => {
  const message = { id: 3, conversation_id: 1, direction: 'in', msgtype: 'text', content: '在吗', created_at: '2026-12-03T12:00:00Z' } as DeskMessage

  it('takes a recall in place', () => {
    const recalled = { ...message, recalled_at: '2026-12-03T12:01:00Z' }
    expect(appendMessage([message], recalled)).toEqual([recalled])
  })
})

describe('colleagues serving one visitor', () => {
  const member = (agent_id: number, unread = 0) => ({ agent_id, unread, invited_by: 1, joined_at: '2026-12-03T10:00:00Z' })

  it('lists the conversations an agent helps with apart from their own', () => {
    const inbox: Inbox = new Map([
      [1, conversation(1, { state: 'active', agent_id: 7 })],
      [2, conversation(2, { state: 'active', agent_id: 8, members: [member(7)] })],
      [3, conversation(3, { state: 'closed', agent_id: 8, members: [member(7)] })],
    ])
    const lists = split(inbox, 7, [])
    expect(lists.mine.map((c) => c.id)).toEqual([1])
    expect(lists.assisting.map((c) => c.id)).toEqual([2])
  })

  it('counts unread per member: the visitor\'s messages for all, a reply for all but its author', () => {
    let inbox: Inbox = new Map([[2, conversation(2, { state: 'active', agent_id: 8, unread: 0, members: [member(7), member(9)] })]])
    const heard = { id: 1, conversation_id: 2, direction: 'in', msgtype: 'text', content: 'hi', created_at: '2026-12-03T12:00:00Z' }
    inbox = applyMessage(inbox, event('message.received', heard, 2), null)
    const byNine = { ...heard, id: 2, direction: 'out', agent_id: 9 }
    inbox = applyMessage(inbox, event('message.sent', byNine, 2), null)
    const now = inbox.get(2)!
    expect(unreadFor(now, 7)).toBe(2)
    expect(unreadFor(now, 9)).toBe(1)
    expect(unreadFor(now, 8)).toBe(1)
  })
})
