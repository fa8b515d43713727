// A login QR code from `POST /api/v1/instances/{id}/login-qr`, ready to show: agents answer with
// either an image (`data:image/…`) or the address to scan, which we draw as a QR code here —
// the console's Content-Security-Policy loads no image from another host.
import QRCode from 'qrcode'

export async function qrImage(qrCodeUrl: string): Promise<string> {
  if (/^data:image\//i.test(qrCodeUrl)) return qrCodeUrl
  return QRCode.toDataURL(qrCodeUrl, { margin: 1, width: 220 })
}

/** Whole seconds until `expiresAt` (Unix seconds), never below 0; `null` when it has none. */
export function secondsLeft(expiresAt: number | null | undefined, nowMs: number = Date.now()): number | null {
  if (expiresAt === null || expiresAt === undefined) return null
  return Math.max(0, Math.floor(expiresAt - nowMs / 1000))
}
