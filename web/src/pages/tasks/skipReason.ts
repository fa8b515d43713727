// Why a receiver was skipped, in the user's words: the API's reasons are codes (`unsubscribed`,
// `frequency_cap`…) and new ones may appear before the console knows them, so an unknown code is
// shown as it is rather than as a missing translation key.

export interface Translator {
  t: (key: string) => string
  te: (key: string) => boolean
}

export function skipReasonText(reason: string, { t, te }: Translator): string {
  const key = `wizard.skip.${reason}`
  return te(key) ? t(key) : reason
}
