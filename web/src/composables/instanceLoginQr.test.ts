import { describe, expect, it } from 'vitest'

import { qrImage, secondsLeft } from './instanceLoginQr'

describe('qrImage', () => {
  it('shows an image the agent sent as it is', async () => {
    expect(await qrImage('data:image/png;base64,AAAA')).toBe('data:image/png;base64,AAAA')
  })

  it('draws an address as a QR code', async () => {
    expect(await qrImage('https://qr.example/login_1')).toMatch(/^data:image\/png;base64,/)
  })
})

describe('secondsLeft', () => {
  it('counts down to the expiry and stops at zero', () => {
    expect(secondsLeft(1_000_120, 1_000_000_000)).toBe(120)
    expect(secondsLeft(1_000_000, 1_000_100_000)).toBe(0)
    expect(secondsLeft(null)).toBeNull()
  })
})
