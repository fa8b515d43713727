import { createRouter, createWebHistory, type RouteRecordRaw } from 'vue-router'

import AppLayout from './components/AppLayout.vue'
import SignIn from './pages/SignIn.vue'
import { useSession } from './stores/session'

declare module 'vue-router' {
  interface RouteMeta {
    /** The permission the page needs; the menu hides it and the page explains a 403 without it. */
    perm?: string
    /** Reachable without a session. */
    public?: boolean
    /** i18n key of the menu entry and page title. */
    title?: string
  }
}

export const pages: RouteRecordRaw[] = [
  { path: '', name: 'home', component: () => import('./pages/HomePage.vue'), meta: { title: 'nav.home' } },
  { path: 'tasks', name: 'tasks', component: () => import('./pages/tasks/TaskList.vue'), meta: { perm: 'tasks:read', title: 'nav.tasks' } },
  { path: 'tasks/new', name: 'task-new', component: () => import('./pages/tasks/NewBroadcast.vue'), meta: { perm: 'tasks:create', title: 'wizard.title' } },
  { path: 'tasks/:id(\\d+)', name: 'task', component: () => import('./pages/tasks/TaskDetail.vue'), meta: { perm: 'tasks:read', title: 'nav.tasks' } },
  { path: 'contacts', name: 'contacts', component: () => import('./pages/contacts/ContactList.vue'), meta: { perm: 'contacts:read', title: 'nav.contacts' } },
  { path: 'outcomes', name: 'outcomes', component: () => import('./pages/outcomes/OutcomeSummary.vue'), meta: { perm: 'tasks:read', title: 'nav.outcomes' } },
  { path: 'segments', name: 'segments', component: () => import('./pages/segments/SegmentList.vue'), meta: { perm: 'segments:read', title: 'nav.segments' } },
  { path: 'opt-outs', name: 'opt-outs', component: () => import('./pages/contacts/ContactList.vue'), props: { optOuts: true }, meta: { perm: 'contacts:read', title: 'nav.optOuts' } },
  { path: 'groups', name: 'groups', component: () => import('./pages/groups/GroupList.vue'), meta: { perm: 'groups:read', title: 'nav.groups' } },
  { path: 'templates', name: 'templates', component: () => import('./pages/templates/TemplateList.vue'), meta: { perm: 'templates:read', title: 'nav.templates' } },
  { path: 'desk', name: 'desk', component: () => import('./pages/desk/DeskWorkbench.vue'), meta: { perm: 'desk:work', title: 'nav.desk' } },
  { path: 'desk-supervisor', name: 'desk-supervisor', component: () => import('./pages/desk/DeskSupervisor.vue'), meta: { perm: 'desk:supervise', title: 'nav.deskSupervisor' } },
  { path: 'desk-history', name: 'desk-history', component: () => import('./pages/desk/DeskHistory.vue'), meta: { perm: 'desk:work', title: 'nav.deskHistory' } },
  { path: 'desk-settings', name: 'desk-settings', component: () => import('./pages/desk/DeskSettings.vue'), meta: { perm: 'desk:manage', title: 'nav.deskSettings' } },
  { path: 'instances', name: 'instances', component: () => import('./pages/instances/InstanceList.vue'), meta: { perm: 'instances:read', title: 'nav.instances' } },
  { path: 'instances/:id(\\d+)', name: 'instance', component: () => import('./pages/instances/InstanceDetail.vue'), meta: { perm: 'instances:read', title: 'nav.instances' } },
  { path: 'health', name: 'health', component: () => import('./pages/monitoring/HealthOverview.vue'), meta: { perm: 'monitoring:read', title: 'nav.health' } },
  { path: 'alerts', name: 'alerts', component: () => import('./pages/alerts/AlertList.vue'), meta: { perm: 'alerts:read', title: 'nav.alerts' } },
  { path: 'alert-rules', name: 'alert-rules', component: () => import('./pages/alerts/AlertRuleList.vue'), meta: { perm: 'alert_rules:read', title: 'nav.alertRules' } },
  { path: 'logs', name: 'logs', component: () => import('./pages/logs/LogSearch.vue'), meta: { perm: 'logs:read', title: 'nav.logs' } },
  { path: 'users', name: 'users', component: () => import('./pages/admin/UserList.vue'), meta: { perm: 'users:read', title: 'nav.users' } },
  { path: 'roles', name: 'roles', component: () => import('./pages/admin/RoleList.vue'), meta: { perm: 'roles:read', title: 'nav.roles' } },
  { path: 'audit', name: 'audit', component: () => import('./pages/admin/AuditLog.vue'), meta: { perm: 'audit_logs:read', title: 'nav.audit' } },
  { path: 'login-logs', name: 'login-logs', component: () => import('./pages/admin/LoginLogs.vue'), meta: { perm: 'login_logs:read', title: 'nav.loginLogs' } },
  { path: 'profile', name: 'profile', component: () => import('./pages/profile/ProfilePage.vue'), meta: { title: 'app.profile' } },
]

const routes: RouteRecordRaw[] = [
  { path: '/sign-in', name: 'sign-in', component: SignIn, meta: { public: true } },
  { path: '/', component: AppLayout, children: pages },
  { path: '/:missing(.*)*', name: 'not-found', component: () => import('./pages/NotFound.vue'), meta: { public: true } },
]

export const router = createRouter({ history: createWebHistory(), routes })

router.beforeEach(async (to) => {
  const session = useSession()
  if (!session.loaded) await session.load()
  if (to.meta.public) return true
  if (!session.signedIn) return { name: 'sign-in', query: { next: to.fullPath } }
  return true
})
