// The contacts pages' strings, 简体中文 and English side by side (English typed against Chinese).
export const zh = {
  contacts: {
    title: '客户',
    keyword: '昵称、备注、手机号',
    nickname: '昵称',
    remark: '备注',
    tags: '标签',
    type: '类型',
    lastChat: '最近聊天',
    import: '导入客户',
    export: '导出 CSV',
    account: '所属账号',
    file: '文件（CSV 或 XLSX）',
    importHint: '第一行为列名：wxid、nickname、remark、phone、gender、region、corp_name、tags、is_star、custom.<名称>',
    upload: '上传并导入',
    imported: '已导入 {rows} 行：新增 {created}，更新 {updated}，新建标签 {tags_created}',
    importRefused: '有 {n} 处错误，未导入任何行',
    row: '行',
    column: '列',
  },
}

export const en: typeof zh = {
  contacts: {
    title: 'Contacts',
    keyword: 'Nickname, remark, phone',
    nickname: 'Nickname',
    remark: 'Remark',
    tags: 'Tags',
    type: 'Type',
    lastChat: 'Last chat',
    import: 'Import contacts',
    export: 'Export CSV',
    account: 'Account',
    file: 'File (CSV or XLSX)',
    importHint: 'The first row names the columns: wxid, nickname, remark, phone, gender, region, corp_name, tags, is_star, custom.<name>',
    upload: 'Upload and import',
    imported: 'Imported {rows} rows: {created} new, {updated} updated, {tags_created} new tags',
    importRefused: '{n} errors: no row was imported',
    row: 'Row',
    column: 'Column',
  },
}
