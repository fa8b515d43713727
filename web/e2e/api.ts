// What the browser tests prepare through the API as a bearer client (the same API the console
// uses): instances on the sim, roles and users, broadcasts.

export const base = process.env.WEWORK_URL ?? 'http://127.0.0.1:8080'
export const simUrl = process.env.WEWORK_SIM_URL ?? 'http://127.0.0.1:9100'
export const adminPassword = process.env.WEWORK_ADMIN_PASSWORD ?? 'Console-Admin-Passw0rd!'

export class Api {
  private constructor(private token: string) {}

  static async signIn(login = 'admin', password = adminPassword): Promise<Api> {
    const answer = await raw('POST', '/api/v1/auth/login', undefined, { login, password })
    return new Api((answer as { access_token: string }).access_token)
  }

  call<T>(method: string, path: string, body?: unknown): Promise<T> {
    return raw(method, path, this.token, body) as Promise<T>
  }

  /** An agent instance on the sim, synced, with its contacts. */
  simInstance(name: string): Promise<number> {
    return this.synced({ name, kind: 'agent', api_url: `${simUrl}/agent`, heartbeat_interval: 5, config: { agent_secret: 'sim-agent-secret' } })
  }

  /** A WeCom app instance on the sim (its customers, customer mass messages), synced. */
  simWecomInstance(name: string): Promise<number> {
    return this.synced({
      name,
      kind: 'wecom',
      api_url: `${simUrl}/cgi-bin`,
      heartbeat_interval: 5,
      config: { corp_id: 'wwsimcorp', corp_secret: 'sim-corp-secret', agent_id: 1000002 },
    })
  }

  /** A WeCom instance on the sim with the 微信客服 secret and callback settings, synced (its
   * 微信客服 accounts are `kf:wksim0`, `kf:wksim1`), with the sim's callbacks pointed at it. */
  async simKfInstance(name: string): Promise<number> {
    const token = 'e2eKfToken'
    const aesKey = 'abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG'
    const id = await this.synced({
      name,
      kind: 'wecom',
      api_url: `${simUrl}/cgi-bin`,
      heartbeat_interval: 5,
      config: { corp_id: 'wwsimcorp', corp_secret: 'sim-corp-secret', kf_secret: 'sim-kf-secret', callback_token: token, callback_aes_key: aesKey },
    })
    const instance = await this.call<{ callback_url: string }>('GET', `/api/v1/instances/${id}`)
    const callback = new URL(instance.callback_url)
    await simKf('PUT', 'callback', { url: `${base}${callback.pathname}${callback.search}`, token, aes_key: aesKey })
    return id
  }

  private async synced(input: Record<string, unknown>): Promise<number> {
    const instance = await this.call<{ id: number }>('POST', '/api/v1/instances', input)
    await this.call('POST', `/api/v1/instances/${instance.id}/sync`)
    for (let i = 0; i < 120; i++) {
      const runs = await this.call<{ items: { status: string }[] }>('GET', `/api/v1/instances/${instance.id}/sync-runs`)
      if (runs.items.some((r) => r.status === 'succeeded')) return instance.id
      await new Promise((r) => setTimeout(r, 500))
    }
    throw new Error(`the sim instance ${String(input.name)} did not sync`)
  }

  /** A user holding exactly `permissions`, through a role of their own. */
  async userWith(username: string, password: string, permissions: string[]): Promise<number> {
    const role = await this.call<{ id: number }>('POST', '/api/v1/roles', { name: `${username}_role`, display_name: `${username} role` })
    await this.call('PUT', `/api/v1/roles/${role.id}/permissions`, { permissions })
    const user = await this.call<{ id: number }>('POST', '/api/v1/users', { username, password })
    await this.call('PUT', `/api/v1/users/${user.id}/roles`, { roles: [{ role_id: role.id }] })
    return user.id
  }
}

async function raw(method: string, path: string, token: string | undefined, body?: unknown): Promise<unknown> {
  const response = await fetch(`${base}${path}`, {
    method,
    headers: {
      ...(token ? { authorization: `Bearer ${token}` } : {}),
      ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
    },
    body: body === undefined ? undefined : JSON.stringify(body),
  })
  const text = await response.text()
  if (!response.ok) throw new Error(`${method} ${path}: ${response.status} ${text}`)
  return text ? JSON.parse(text) : undefined
}

export async function simFaults(faults: Record<string, unknown>) {
  const response = await fetch(`${simUrl}/_sim/faults`, {
    method: 'PUT',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(faults),
  })
  if (!response.ok) throw new Error(`sim faults: ${response.status}`)
}

/** What the sim's WeCom holds of customer mass messages (oldest first). */
export async function simMassMessages(): Promise<{ msgid: string }[]> {
  const response = await fetch(`${simUrl}/_sim/mass`)
  if (!response.ok) throw new Error(`sim mass: ${response.status}`)
  return (await response.json()) as { msgid: string }[]
}

/** A member confirms a customer mass message in the WeCom client. */
export async function simConfirmMass(msgid: string) {
  const response = await fetch(`${simUrl}/_sim/mass/${encodeURIComponent(msgid)}/confirm`, { method: 'POST' })
  if (!response.ok) throw new Error(`sim confirm: ${response.status}`)
}

/** The contact writes `content` to its account on the sim's agent, which signs the event and
 * delivers it to the instance's callback URL (on this server). */
export async function simInbound(
  api: Api,
  instanceId: number,
  contact: { id: number; account_id: number; wxid: string },
  content: string,
) {
  const instance = await api.call<{ callback_url: string }>('GET', `/api/v1/instances/${instanceId}`)
  const account = await api.call<{ wxid: string }>('GET', `/api/v1/accounts/${contact.account_id}`)
  const callback = new URL(instance.callback_url)
  const event = {
    type: 'message.received',
    account_wxid: account.wxid,
    url: `${base}${callback.pathname}${callback.search}`,
    data: { from: contact.wxid, msgtype: 'text', content, message_id: `e2e-${contact.id}-${Date.now()}` },
  }
  const response = await fetch(`${simUrl}/_sim/events`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(event) })
  const pushed = (await response.json()) as { status?: number; error?: string }
  if (pushed.status !== 200) throw new Error(`sim event: ${JSON.stringify(pushed)}`)
}

/** The sim's 微信客服 control: `messages` (a WeChat user writes), `enter` (opens the chat from a
 * link), `callback`, `sessions`, `sent`. */
export async function simKf<T = unknown>(method: string, what: string, body?: unknown): Promise<T> {
  const response = await fetch(`${simUrl}/_sim/kf/${what}`, {
    method,
    headers: body === undefined ? {} : { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  })
  if (!response.ok) throw new Error(`sim kf ${what}: ${response.status} ${await response.text()}`)
  const text = await response.text()
  return (text ? JSON.parse(text) : undefined) as T
}
