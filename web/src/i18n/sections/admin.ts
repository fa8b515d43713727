// The admin pages' strings, 简体中文 and English side by side (English typed against Chinese).
export const zh = {
  users: {
    title: '用户',
    username: '用户名',
    roles: '角色',
    lastLogin: '最近登录',
    disable: '禁用',
    enable: '启用',
    unlock: '解锁',
    status: { active: '正常', disabled: '已禁用' },
  },
  roles: {
    title: '角色与权限',
    create: '新建角色',
    key: '标识',
    description: '说明',
    resource: '资源',
    permissionsOf: '「{role}」的权限',
  },
  audit: { title: '审计日志', action: '操作', resource: '资源', user: '用户', result: '结果', ip: 'IP' },
}

export const en: typeof zh = {
  users: {
    title: 'Users',
    username: 'User name',
    roles: 'Roles',
    lastLogin: 'Last sign-in',
    disable: 'Disable',
    enable: 'Enable',
    unlock: 'Unlock',
    status: { active: 'Active', disabled: 'Disabled' },
  },
  roles: {
    title: 'Roles and permissions',
    create: 'New role',
    key: 'Key',
    description: 'Description',
    resource: 'Resource',
    permissionsOf: 'Permissions of “{role}”',
  },
  audit: { title: 'Audit log', action: 'Action', resource: 'Resource', user: 'User', result: 'Result', ip: 'IP' },
}
