import { defineStore } from 'pinia'

import { ApiError, api, ok, type Schemas } from '../api/client'

type Me = Schemas['MeOut']

/** Who is signed in and what they may do (`/api/v1/auth/me`). */
export const useSession = defineStore('session', {
  state: () => ({ me: null as Me | null, loaded: false }),
  getters: {
    signedIn: (state) => state.me !== null,
    permissions: (state) => new Set(state.me?.permissions ?? []),
  },
  actions: {
    can(permission: string | undefined): boolean {
      return !permission || this.permissions.has(permission)
    },
    async load() {
      try {
        this.me = await ok(api.GET('/api/v1/auth/me'))
      } catch (error) {
        if (!(error instanceof ApiError) || error.status !== 401) throw error
        this.me = null
      } finally {
        this.loaded = true
      }
    },
    /** Signs in; an `ApiError` with code `totp_required` asks for the second factor. */
    async signIn(login: string, password: string, totpCode?: string) {
      await ok(
        api.POST('/api/v1/auth/session', {
          body: { login, password, totp_code: totpCode || undefined },
        }),
      )
      await this.load()
    },
    async signOut() {
      try {
        await ok(api.POST('/api/v1/auth/logout'))
      } finally {
        this.me = null
      }
    },
    forget() {
      this.me = null
    },
  },
})
