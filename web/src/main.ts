import 'element-plus/theme-chalk/el-message.css'
import 'element-plus/theme-chalk/el-message-box.css'
import './style.css'

import { createPinia } from 'pinia'
import { createApp } from 'vue'

import { whenSignedOut } from './api/session'
import App from './App.vue'
import { i18n } from './i18n'
import { router } from './router'
import { useSession } from './stores/session'

const app = createApp(App).use(createPinia()).use(i18n).use(router)
whenSignedOut(() => {
  useSession().forget()
  const next = router.currentRoute.value.fullPath
  if (router.currentRoute.value.name !== 'sign-in') void router.push({ name: 'sign-in', query: { next } })
})
app.mount('#app')
