// Each area of the console keeps its strings in one file here, both languages side by side.
import * as admin from './admin'
import * as alerts from './alerts'
import * as contacts from './contacts'
import * as desk from './desk'
import * as groups from './groups'
import * as instances from './instances'
import * as monitoring from './monitoring'
import * as segments from './segments'
import * as tasks from './tasks'
import * as templates from './templates'

export const zh = {
  ...tasks.zh,
  ...contacts.zh,
  ...segments.zh,
  ...desk.zh,
  ...groups.zh,
  ...templates.zh,
  ...instances.zh,
  ...monitoring.zh,
  ...alerts.zh,
  ...admin.zh,
}

export const en: typeof zh = {
  ...tasks.en,
  ...contacts.en,
  ...segments.en,
  ...desk.en,
  ...groups.en,
  ...templates.en,
  ...instances.en,
  ...monitoring.en,
  ...alerts.en,
  ...admin.en,
}
