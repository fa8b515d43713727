import { mount } from '@vue/test-utils'
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { defineComponent, h } from 'vue'

import { startsSoon, useTaskProgress } from './useTaskProgress'

/** An EventSource the test drives. */
class FakeEventSource extends EventTarget {
  static CLOSED = 2
  static all: FakeEventSource[] = []
  readyState = 0
  constructor(public url: string) {
    super()
    FakeEventSource.all.push(this)
  }
  close() {
    this.readyState = FakeEventSource.CLOSED
  }
  emit(status: string, sent: number) {
    const event = new MessageEvent('progress', { data: JSON.stringify({ id: 4, status, counts: { success: sent } }) })
    this.dispatchEvent(event)
  }
}

function harness() {
  let api!: ReturnType<typeof useTaskProgress>
  const seen: string[] = []
  mount(
    defineComponent({
      setup() {
        api = useTaskProgress(() => 4, (task) => seen.push(task.status))
        return () => h('div')
      },
    }),
  )
  return { api: () => api, seen }
}

describe('useTaskProgress', () => {
  beforeEach(() => {
    FakeEventSource.all = []
    vi.stubGlobal('EventSource', FakeEventSource)
  })
  afterEach(() => vi.unstubAllGlobals())

  it('follows the task while it runs and closes the stream when it stops', () => {
    const { api, seen } = harness()
    api().follow()
    const stream = FakeEventSource.all[0]!
    expect(stream.url).toBe('/api/v1/tasks/4/progress')
    stream.dispatchEvent(new Event('open'))
    expect(api().live.value).toBe(true)
    stream.emit('running', 10)
    stream.emit('running', 20)
    expect(stream.readyState).not.toBe(FakeEventSource.CLOSED)
    stream.emit('completed', 30)
    expect(seen).toEqual(['running', 'running', 'completed'])
    expect(stream.readyState).toBe(FakeEventSource.CLOSED)
    expect(api().live.value).toBe(false)
    expect(api().task.value?.status).toBe('completed')
  })

  it('keeps following a paused task and comes back for one about to start', () => {
    vi.useFakeTimers()
    const { api } = harness()
    api().follow()
    const first = FakeEventSource.all[0]!
    first.emit('paused', 5)
    expect(first.readyState).not.toBe(FakeEventSource.CLOSED)
    first.emit('scheduled', 5)
    expect(first.readyState).toBe(FakeEventSource.CLOSED)
    vi.advanceTimersByTime(2000)
    expect(FakeEventSource.all).toHaveLength(2)
    vi.useRealTimers()
  })

  it('knows when a scheduled task is due', () => {
    const now = Date.parse('2026-12-02T10:00:00Z')
    expect(startsSoon({ scheduled_time: null, next_fire_at: null }, now)).toBe(true)
    expect(startsSoon({ scheduled_time: '2026-12-02T10:00:30Z', next_fire_at: null }, now)).toBe(true)
    expect(startsSoon({ scheduled_time: '2026-12-02T11:00:00Z', next_fire_at: null }, now)).toBe(false)
  })

  it('opens one stream at a time', () => {
    const { api } = harness()
    api().follow()
    api().follow()
    expect(FakeEventSource.all).toHaveLength(2)
    expect(FakeEventSource.all[0]!.readyState).toBe(FakeEventSource.CLOSED)
  })
})
