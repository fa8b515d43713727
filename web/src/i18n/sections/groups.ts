// The groups pages' strings, 简体中文 and English side by side (English typed against Chinese).
export const zh = {}

export const en: typeof zh = {}
