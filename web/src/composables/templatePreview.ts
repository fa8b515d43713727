// The server's render of a saved template (`POST /api/v1/templates/{id}/preview`) for a chosen
// contact and the values typed so far, as typing pauses (see `useLatest`).
import { ApiError, api, ok, type Schemas } from '../api/client'
import { useLatest } from './templateLatest'

export interface PreviewRequest {
  templateId: number
  contactId?: number
  sample: Record<string, unknown>
  /** The saved version (`updated_at`): a save renders again though nothing else changed. */
  version?: string
}

export type Render = (request: PreviewRequest) => Promise<Schemas['Preview']>

/** The API call; `sample` overrides the contact's fields and the template's defaults. */
export const renderOnServer: Render = (request) =>
  ok(
    api.POST('/api/v1/templates/{id}/preview', {
      params: { path: { id: request.templateId } },
      body: request.contactId === undefined ? { sample: request.sample } : { contact_id: request.contactId, sample: request.sample },
    }),
  )

/** Values the user typed: blank ones are left out, so the template's default or placeholder shows. */
export function sampleOf(values: Record<string, unknown>): Record<string, unknown> {
  const sample: Record<string, unknown> = {}
  for (const [name, value] of Object.entries(values)) {
    if (value !== '' && value !== null && value !== undefined) sample[name] = value
  }
  return sample
}

/** The problem's lines as `field: message` (or its detail when it names no field). */
export function problemLines(error: ApiError | Error): string[] {
  if (error instanceof ApiError && error.problem.errors?.length) {
    return error.problem.errors.map((e) => (e.field ? `${e.field}: ${e.message}` : e.message))
  }
  return [error.message]
}

export function useTemplatePreview(request: () => PreviewRequest | null, options: { delay?: number; render?: Render } = {}) {
  const { data, error, loading } = useLatest(request, options.render ?? renderOnServer, options.delay ?? 300)
  return { preview: data, error, loading }
}
