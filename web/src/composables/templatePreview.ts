// The server's render of a template for a chosen contact and the values typed so far, as typing
// pauses (see `useLatest`): of a saved template (`POST /api/v1/templates/{id}/preview`, the
// broadcast wizard) or of the editor's draft, saved or not (`POST /api/v1/templates/preview`,
// checked as a save would be, so what is shown is what a send would produce).
import { ApiError, api, ok, type Schemas } from '../api/client'
import type { TemplateDraft } from './templateForm'
import { useLatest } from './templateLatest'

interface Audience {
  contactId?: number
  sample: Record<string, unknown>
}

/** A saved template by id, or a draft as the editor holds it. */
export type PreviewRequest = Audience & ({ templateId: number } | { draft: TemplateDraft })

export type Render = (request: PreviewRequest) => Promise<Schemas['Preview']>

/** The API call; `sample` overrides the contact's fields and the template's defaults. */
export const renderOnServer: Render = (request) => {
  const audience = request.contactId === undefined ? { sample: request.sample } : { contact_id: request.contactId, sample: request.sample }
  if ('draft' in request) return ok(api.POST('/api/v1/templates/preview', { body: { ...request.draft, ...audience } }))
  return ok(api.POST('/api/v1/templates/{id}/preview', { params: { path: { id: request.templateId } }, body: audience }))
}

/** Values the user typed: blank ones are left out, so the template's default or placeholder shows. */
export function sampleOf(values: Record<string, unknown>): Record<string, unknown> {
  const sample: Record<string, unknown> = {}
  for (const [name, value] of Object.entries(values)) {
    if (value !== '' && value !== null && value !== undefined) sample[name] = value
  }
  return sample
}

/** The variables to type preview values for: named ones, each name once (a row being typed may
 * be blank or repeat another's name; the preview names that error, the inputs skip it). */
export function previewVariables(specs: Schemas['VariableSpec'][]): Schemas['VariableSpec'][] {
  const seen = new Set<string>()
  return specs.filter((spec) => {
    if (!spec.name || seen.has(spec.name)) return false
    seen.add(spec.name)
    return true
  })
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
