// One typed client for the whole console: paths and shapes come from the generated
// `schema.d.ts` (`npm run gen:api`, checked in CI), errors are RFC 9457 problems.

import createClient from 'openapi-fetch'

import type { components, paths } from './schema'
import { sessionFetch } from './session'

export type Schemas = components['schemas']
export type Problem = Schemas['Problem']

export const api = createClient<paths>({ baseUrl: '', fetch: sessionFetch })

/** A refused request: its status, the problem document and the invalid fields by name. */
export class ApiError extends Error {
  readonly status: number
  readonly problem: Partial<Problem>

  constructor(status: number, problem: Partial<Problem> | undefined) {
    super(problem?.detail || problem?.title || `HTTP ${status}`)
    this.status = status
    this.problem = problem ?? {}
  }

  get code(): string | undefined {
    return this.problem.code
  }

  /** `{ field: message }` for showing each error beside its field. */
  get fieldErrors(): Record<string, string> {
    const fields: Record<string, string> = {}
    for (const error of this.problem.errors ?? []) {
      fields[error.field] ??= error.message
    }
    return fields
  }
}

type Answer<T> = { data?: T; error?: unknown; response: Response }

/** The body of a successful answer, or an `ApiError`. */
export async function ok<T>(call: Promise<Answer<T>>): Promise<T> {
  const { data, error, response } = await call
  if (!response.ok) throw new ApiError(response.status, error as Partial<Problem> | undefined)
  return data as T
}
