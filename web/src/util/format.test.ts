import { describe, expect, it } from 'vitest'

import { formatDuration, formatTime } from './format'

describe('formatDuration', () => {
  it('keeps the two largest units', () => {
    expect(formatDuration(3 * 3600 + 5 * 60 + 9)).toBe('3 h 05 min')
    expect(formatDuration(250)).toBe('4 min 10 s')
    expect(formatDuration(12.4)).toBe('12 s')
  })
  it('shows a dash for what is not a time', () => {
    expect(formatDuration(null)).toBe('—')
    expect(formatDuration(-1)).toBe('—')
    expect(formatDuration(Number.NaN)).toBe('—')
  })
})

describe('formatTime', () => {
  it('formats in the given language and leaves garbage as it came', () => {
    expect(formatTime('2026-12-02T08:00:00Z', 'en')).toMatch(/\d/)
    expect(formatTime(null, 'en')).toBe('—')
    expect(formatTime('not a date', 'en')).toBe('not a date')
  })
})
