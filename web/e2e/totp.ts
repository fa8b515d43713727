import { createHmac } from 'node:crypto'

// RFC 6238 codes (SHA-1, 30 s, 6 digits), as an authenticator app computes them.

function base32(secret: string): Buffer {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567'
  let bits = ''
  for (const c of secret.replace(/=+$/, '').toUpperCase()) {
    const value = alphabet.indexOf(c)
    if (value < 0) continue
    bits += value.toString(2).padStart(5, '0')
  }
  const bytes = []
  for (let i = 0; i + 8 <= bits.length; i += 8) bytes.push(parseInt(bits.slice(i, i + 8), 2))
  return Buffer.from(bytes)
}

export function totp(secret: string, at = Date.now()): string {
  const counter = Buffer.alloc(8)
  counter.writeBigUInt64BE(BigInt(Math.floor(at / 30_000)))
  const mac = createHmac('sha1', base32(secret)).update(counter).digest()
  const offset = mac[mac.length - 1]! & 0x0f
  const code = (mac.readUInt32BE(offset) & 0x7fffffff) % 1_000_000
  return String(code).padStart(6, '0')
}

/** Waits for the next 30 s step, so a fresh code is not one already spent. */
export async function nextStep(): Promise<void> {
  const wait = 30_000 - (Date.now() % 30_000) + 200
  await new Promise((resolve) => setTimeout(resolve, wait))
}
