//! Every route, named once. The list below both builds the OpenAPI paths (from each handler's
//! `#[utoipa::path]`) and registers the handlers with actix at those paths and methods, so a
//! route cannot be served without being documented or documented without being served. What a
//! route needs is read off its handler's first argument (`Authorized<P>`, `Authenticated`,
//! `Public`), so each permission is written once, in the extractor's type.

use std::collections::HashMap;

use actix_web::{Route, http::Method, web};

use super::*;
use crate::extract::{Access, access_of};

macro_rules! route_table {
    ($($module:ident :: $handler:ident),* $(,)?) => {
        /// The documented paths of every handler.
        #[derive(utoipa::OpenApi)]
        #[openapi(paths($($module::$handler),*))]
        pub struct RoutePaths;

        /// Each handler's operation id (its name) and what it needs.
        pub fn accesses() -> Vec<(&'static str, Access)> {
            vec![$((stringify!($handler), access_of(&$module::$handler))),*]
        }

        /// Mounts every handler at its documented path and method.
        pub fn register(cfg: &mut web::ServiceConfig) {
            let mut mount = Mount::new();
            $(mount.add(stringify!($handler), web::route().to($module::$handler));)*
            mount.finish(cfg);
        }
    };
}

route_table!(
    health::healthz,
    health::readyz,
    health::metrics,
    auth::login,
    session::console_sign_in,
    session::console_refresh,
    auth::refresh,
    auth::logout,
    auth::me,
    auth::list_sessions,
    auth::revoke_session,
    auth::change_password,
    auth::totp_enroll,
    auth::totp_confirm,
    auth::totp_disable,
    users::list_users,
    users::create_user,
    users::get_user,
    users::update_user,
    users::delete_user,
    users::disable_user,
    users::enable_user,
    users::unlock_user,
    users::reset_totp,
    users::set_password,
    users::set_roles,
    users::set_instances,
    users::list_user_sessions,
    users::revoke_user_sessions,
    roles::list_roles,
    roles::create_role,
    roles::get_role,
    roles::update_role,
    roles::delete_role,
    roles::set_permissions,
    permissions::list_permissions,
    audit_logs::list_audit_logs,
    login_logs::list_login_logs,
    logs::search_logs,
    monitoring::overview,
    monitoring::series,
    alerts::list_alert_rules,
    alerts::create_alert_rule,
    alerts::get_alert_rule,
    alerts::update_alert_rule,
    alerts::delete_alert_rule,
    alerts::list_alerts,
    alerts::get_alert,
    alerts::acknowledge_alert,
    alerts::resolve_alert,
    instances::list_instances,
    instances::create_instance,
    instances::get_instance,
    instances::update_instance,
    instances::delete_instance,
    instances::set_maintenance,
    instances::check_instance,
    instances::list_configs,
    instances::put_config,
    instances::delete_config,
    instances::request_sync,
    instances::list_sync_runs,
    instances::login_qr,
    accounts::list_accounts,
    accounts::get_account,
    accounts::update_account,
    contacts::list_contacts,
    contacts::create_contact,
    contacts::get_contact,
    contacts::update_contact,
    contacts::delete_contact,
    contacts::opt_out_contact,
    contacts::opt_in_contact,
    contacts::bulk_tag,
    contacts::import_contacts,
    contacts::export_contacts,
    tags::list_tags,
    tags::create_tag,
    tags::update_tag,
    tags::delete_tag,
    segments::list_segments,
    segments::create_segment,
    segments::count_segment_draft,
    segments::get_segment,
    segments::update_segment,
    segments::delete_segment,
    segments::count_segment,
    groups::list_groups,
    groups::get_group,
    groups::update_group,
    groups::list_members,
    callbacks::wecom_verify,
    callbacks::wecom_event,
    callbacks::agent_event,
    templates::list_templates,
    templates::create_template,
    templates::get_template,
    templates::update_template,
    templates::delete_template,
    templates::preview_template,
    templates::preview_template_draft,
    tasks::list_tasks,
    tasks::estimate_task,
    tasks::create_task,
    tasks::get_task,
    tasks::delete_task,
    tasks::pause_task,
    tasks::resume_task,
    tasks::cancel_task,
    tasks::retry_failed,
    tasks::remind_task,
    tasks::list_runs,
    tasks::list_receivers,
    tasks::report_csv,
    tasks::task_outcomes,
    tasks::pick_variant_winner,
    tasks::outcome_summary,
    tasks::progress_stream,
    messages::send_message,
    messages::list_messages,
    desk::list_skill_groups,
    desk::create_skill_group,
    desk::update_skill_group,
    desk::delete_skill_group,
    desk::list_visitor_groups,
    desk::create_visitor_group,
    desk::update_visitor_group,
    desk::delete_visitor_group,
    desk::list_channels,
    desk::create_channel,
    desk::update_channel,
    desk::delete_channel,
    desk::list_agents,
    desk::create_agent,
    desk::update_agent,
    desk::delete_agent,
    desk::set_agent_status,
    desk::agent_work_log,
    desk::desk_me,
    desk::set_my_status,
    desk::desk_heartbeat,
    desk::desk_overview,
    desk::list_conversations,
    desk::get_conversation,
    desk::conversation_messages,
    desk::conversation_transfers,
    desk::accept_conversation,
    desk::reply_conversation,
    desk::transfer_conversation,
    desk::close_conversation,
    desk::invite_member,
    desk::remove_member,
    desk::read_conversation,
    desk::desk_events,
    desk::list_visitors,
    desk::get_visitor,
    desk::update_visitor,
    desk::list_quick_replies,
    desk::create_quick_reply,
    desk::update_quick_reply,
    desk::delete_quick_reply,
);

/// Routes on their way into actix, grouped by resource so each request is matched against a
/// scope first (`/api/v1/tasks`), not against every route.
struct Mount {
    documented: HashMap<String, (String, Method)>,
    routes: Vec<(String, Route)>,
}

impl Mount {
    fn new() -> Self {
        let mut documented = HashMap::new();
        for (path, item) in &crate::openapi::document().paths.paths {
            for (method, operation) in [
                (Method::GET, &item.get),
                (Method::POST, &item.post),
                (Method::PUT, &item.put),
                (Method::PATCH, &item.patch),
                (Method::DELETE, &item.delete),
            ] {
                if let Some(id) = operation.as_ref().and_then(|op| op.operation_id.clone()) {
                    documented.insert(id, (path.clone(), method));
                }
            }
        }
        Self {
            documented,
            routes: Vec::new(),
        }
    }

    fn add(&mut self, operation_id: &str, route: Route) {
        // Every handler in the table has a `#[utoipa::path]`, or the table would not compile;
        // its operation id is the handler's name (unit test below).
        let (path, method) = self.documented[operation_id].clone();
        self.routes.push((path, route.method(method)));
    }

    fn finish(mut self, cfg: &mut web::ServiceConfig) {
        // A literal segment wins over a parameter in the same place (`/contacts/export` before
        // `/contacts/{id}`): actix tries routes in the order they are added.
        self.routes.sort_by_key(|(path, _)| {
            path.split('/')
                .map(|s| s.starts_with('{'))
                .collect::<Vec<_>>()
        });
        let mut scopes: Vec<(String, Vec<(String, Route)>)> = Vec::new();
        for (path, route) in self.routes {
            let Some(prefix) = scope_of(&path) else {
                cfg.route(&path, route);
                continue;
            };
            let rest = path[prefix.len()..].to_owned();
            match scopes.iter_mut().find(|(p, _)| p == prefix) {
                Some((_, routes)) => routes.push((rest, route)),
                None => scopes.push((prefix.to_owned(), vec![(rest, route)])),
            }
        }
        for (prefix, routes) in scopes {
            let scope = routes
                .into_iter()
                .fold(web::scope(&prefix), |scope, (path, route)| {
                    scope.route(&path, route)
                });
            cfg.service(scope);
        }
    }
}

/// `/api/v1/<resource>` for a route under the versioned API; other routes (probes) stand alone.
fn scope_of(path: &str) -> Option<&str> {
    let rest = path.strip_prefix("/api/v1/")?;
    let end = rest.find('/').unwrap_or(rest.len());
    Some(&path[.."/api/v1/".len() + end])
}

#[cfg(test)]
mod tests {
    use utoipa::OpenApi;

    use super::*;

    #[test]
    fn every_handler_is_documented_under_its_own_name() {
        let doc = RoutePaths::openapi();
        let mut ids: Vec<String> = doc
            .paths
            .paths
            .values()
            .flat_map(|item| [&item.get, &item.post, &item.put, &item.patch, &item.delete])
            .flatten()
            .filter_map(|op| op.operation_id.clone())
            .collect();
        let mut names: Vec<String> = accesses().iter().map(|(n, _)| (*n).to_owned()).collect();
        ids.sort();
        names.sort();
        let unique = names.len();
        names.dedup();
        assert_eq!(unique, names.len(), "two handlers share a name");
        assert_eq!(ids, names);
    }

    #[test]
    fn routes_group_by_resource() {
        assert_eq!(scope_of("/api/v1/tasks/{id}/runs"), Some("/api/v1/tasks"));
        assert_eq!(scope_of("/api/v1/tasks"), Some("/api/v1/tasks"));
        assert_eq!(scope_of("/healthz"), None);
    }

    #[test]
    fn public_routes_are_only_probes_sign_in_and_callbacks() {
        let public: Vec<&str> = accesses()
            .into_iter()
            .filter(|(_, access)| *access == Access::Public)
            .map(|(name, _)| name)
            .collect();
        assert_eq!(
            public,
            [
                "healthz",
                "readyz",
                "metrics",
                "login",
                "console_sign_in",
                "console_refresh",
                "refresh",
                "wecom_verify",
                "wecom_event",
                "agent_event"
            ]
        );
    }
}
