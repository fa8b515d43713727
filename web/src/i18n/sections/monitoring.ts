// The monitoring pages' strings, 简体中文 and English side by side (English typed against Chinese).
// No `@`, `|` or braces except placeholders: vue-i18n syntax.
export const zh = {
  monitoring: {
    title: '健康总览',
    updated: '每 15 秒自动刷新 · 更新于 {time}',
    failed: '无法获取健康数据，稍后自动重试',
    attention: '{n} 个实例异常或离线，需要处理',
    instances: '实例',
    accounts: '账号',
    openAlerts: '未处理告警',
    toAlerts: '查看告警',
    tasks: '消息任务',
    queue: '{runs} 个任务正在发送，{receivers} 个接收者待发送',
    filterStatus: '按状态筛选实例',
    levels: { CRITICAL: '严重', WARNING: '警告', INFO: '提示' },
    desk: {
      title: '客服服务水平',
      now: '排队 {queued} · 接待中 {serving} · 在线客服 {agents}',
      day: '近 24 小时：新会话 {opened}，已结束 {closed}',
      firstResponse: '首次响应（中位 / P90）',
      queueWait: '排队等待（中位）',
      handle: '平均处理时长',
      rating: '平均评分（评价数）',
      perAgent: '人均结束会话',
    },
  },
}

export const en: typeof zh = {
  monitoring: {
    title: 'Health overview',
    updated: 'Refreshes every 15 s · updated {time}',
    failed: 'Could not load the health figures; retrying shortly',
    attention: '{n} instances in error or offline need a look',
    instances: 'Instances',
    accounts: 'Accounts',
    openAlerts: 'Open alerts',
    toAlerts: 'See alerts',
    tasks: 'Message tasks',
    queue: '{runs} tasks sending, {receivers} receivers waiting',
    filterStatus: 'Filter instances by status',
    levels: { CRITICAL: 'Critical', WARNING: 'Warning', INFO: 'Info' },
    desk: {
      title: 'Customer service',
      now: '{queued} queued · {serving} being served · {agents} agents online',
      day: 'Last 24 h: {opened} opened, {closed} closed',
      firstResponse: 'First response (median / p90)',
      queueWait: 'Queue wait (median)',
      handle: 'Mean handle time',
      rating: 'Mean rating (ratings)',
      perAgent: 'Closed per agent',
    },
  },
}
