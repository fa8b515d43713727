// Accounts and instances by id, for the filters' choices and for naming them in rows. One copy
// for the contact and group pages, fetched when a page opens (the first 200 of each: the
// filters are for operators with a handful of instances; more would need a search).
import { shallowRef } from 'vue'

import { api, ok, type Schemas } from '../api/client'
import { useSession } from '../stores/session'
import { notifyError } from '../util/notify'

const accounts = shallowRef<Schemas['AccountView'][]>([])
const instances = shallowRef<Schemas['InstanceView'][]>([])

async function load() {
  const session = useSession()
  try {
    const [a, i] = await Promise.all([
      session.can('accounts:read') ? ok(api.GET('/api/v1/accounts', { params: { query: { limit: 200 } } })) : null,
      session.can('instances:read') ? ok(api.GET('/api/v1/instances', { params: { query: { limit: 200 } } })) : null,
    ])
    if (a) accounts.value = a.items
    if (i) instances.value = i.items
  } catch (error) {
    notifyError(error)
  }
}

function accountName(id: number): string {
  const account = accounts.value.find((a) => a.id === id)
  return account ? account.nickname || account.wxid : `#${id}`
}

function instanceName(id: number): string | undefined {
  return instances.value.find((i) => i.id === id)?.name
}

/** An account's name for its wxid (a group's owner is often one of ours), else the wxid. */
function wxidName(wxid: string | null | undefined): string {
  if (!wxid) return '—'
  const account = accounts.value.find((a) => a.wxid === wxid)
  return account?.nickname ? `${account.nickname} (${wxid})` : wxid
}

export function useContactLookups() {
  return { accounts, instances, load, accountName, instanceName, wxidName }
}
