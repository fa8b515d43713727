// Runs `refresh` every `ms` while the page is shown (ops pages kept open on a wall screen), and
// at once when a hidden tab comes back, so a glance is never older than one period.
import { onBeforeUnmount, onMounted, ref } from 'vue'

export function useInstancePolling(refresh: () => Promise<unknown>, ms = 15_000) {
  const lastRefresh = ref<Date | null>(null)
  let timer: ReturnType<typeof setInterval> | undefined
  let running = false

  async function tick() {
    if (running || document.hidden) return
    running = true
    try {
      await refresh()
      lastRefresh.value = new Date()
    } finally {
      running = false
    }
  }
  const onVisible = () => {
    if (!document.hidden) void tick()
  }

  onMounted(() => {
    timer = setInterval(tick, ms)
    document.addEventListener('visibilitychange', onVisible)
  })
  onBeforeUnmount(() => {
    clearInterval(timer)
    document.removeEventListener('visibilitychange', onVisible)
  })
  return { lastRefresh, tick }
}
