import { mount } from '@vue/test-utils'
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { defineComponent, h } from 'vue'

import { useTaskProgress } from './useTaskProgress'

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

  it('opens one stream at a time', () => {
    const { api } = harness()
    api().follow()
    api().follow()
    expect(FakeEventSource.all).toHaveLength(2)
    expect(FakeEventSource.all[0]!.readyState).toBe(FakeEventSource.CLOSED)
  })
})
