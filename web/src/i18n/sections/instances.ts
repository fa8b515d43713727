// The instances pages' strings, 简体中文 and English side by side (English typed against Chinese).
export const zh = {
  instances: {
    title: '实例',
    kind: '类型',
    accounts: '账号数',
    heartbeat: '最近心跳',
    latency: '延迟',
    check: '立即检查',
    create: '新建实例',
    agent: '代理 (agent)',
    wecom: '企业微信应用',
    apiUrl: '接口地址',
    agentSecret: '代理密钥',
    heartbeatInterval: '心跳间隔（秒）',
    maxAccounts: '最多账号数',
    sync: '同步',
    synced: '{accounts} 个账号，{contacts} 个客户，{groups} 个群',
    syncStatus: { pending: '排队中', running: '同步中', succeeded: '同步完成', failed: '同步失败' },
    status: { online: '在线', offline: '离线', error: '异常', maintenance: '维护中', unknown: '未知' },
  },
}

export const en: typeof zh = {
  instances: {
    title: 'Instances',
    kind: 'Kind',
    accounts: 'Accounts',
    heartbeat: 'Last heartbeat',
    latency: 'Latency',
    check: 'Check now',
    create: 'New instance',
    agent: 'Agent',
    wecom: 'WeCom app',
    apiUrl: 'API URL',
    agentSecret: 'Agent secret',
    heartbeatInterval: 'Heartbeat interval (s)',
    maxAccounts: 'Max accounts',
    sync: 'Sync',
    synced: '{accounts} accounts, {contacts} contacts, {groups} groups',
    syncStatus: { pending: 'Queued', running: 'Syncing', succeeded: 'Synced', failed: 'Failed' },
    status: { online: 'Online', offline: 'Offline', error: 'Error', maintenance: 'Maintenance', unknown: 'Unknown' },
  },
}
