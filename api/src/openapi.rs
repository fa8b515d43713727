//! The OpenAPI document. Each operation's `security` names the permission it needs
//! (`bearer: ["users:read"]`), an empty list means "any signed-in session", and `security: [{}]`
//! marks the public routes — the route-walking test reads exactly this.

use utoipa::{
    Modify, OpenApi,
    openapi::{
        PathItem,
        security::{HttpAuthScheme, HttpBuilder, SecurityScheme},
    },
};

use crate::{error, routes};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "wework API",
        description = "WeCom (企业微信) automation and broadcast platform. Errors are RFC 9457 \
            `application/problem+json`; lists use keyset pagination (`limit`, `cursor` → \
            `next_cursor`). Each operation's security requirement names the permission it needs.",
    ),
    paths(
        routes::health::healthz,
        routes::health::readyz,
        routes::health::metrics,
        routes::auth::login,
        routes::auth::refresh,
        routes::auth::logout,
        routes::auth::me,
        routes::auth::list_sessions,
        routes::auth::revoke_session,
        routes::auth::change_password,
        routes::auth::totp_enroll,
        routes::auth::totp_confirm,
        routes::auth::totp_disable,
        routes::users::list_users,
        routes::users::create_user,
        routes::users::get_user,
        routes::users::update_user,
        routes::users::delete_user,
        routes::users::disable_user,
        routes::users::enable_user,
        routes::users::unlock_user,
        routes::users::reset_totp,
        routes::users::set_password,
        routes::users::set_roles,
        routes::users::set_instances,
        routes::users::list_user_sessions,
        routes::users::revoke_user_sessions,
        routes::roles::list_roles,
        routes::roles::create_role,
        routes::roles::get_role,
        routes::roles::update_role,
        routes::roles::delete_role,
        routes::roles::set_permissions,
        routes::permissions::list_permissions,
        routes::audit_logs::list_audit_logs,
        routes::login_logs::list_login_logs,
        routes::logs::search_logs,
        routes::monitoring::overview,
        routes::monitoring::series,
        routes::alerts::list_alert_rules,
        routes::alerts::create_alert_rule,
        routes::alerts::get_alert_rule,
        routes::alerts::update_alert_rule,
        routes::alerts::delete_alert_rule,
        routes::alerts::list_alerts,
        routes::alerts::get_alert,
        routes::alerts::acknowledge_alert,
        routes::alerts::resolve_alert,
        routes::instances::list_instances,
        routes::instances::create_instance,
        routes::instances::get_instance,
        routes::instances::update_instance,
        routes::instances::delete_instance,
        routes::instances::set_maintenance,
        routes::instances::check_instance,
        routes::instances::list_configs,
        routes::instances::put_config,
        routes::instances::delete_config,
        routes::instances::request_sync,
        routes::instances::list_sync_runs,
        routes::instances::login_qr,
        routes::accounts::list_accounts,
        routes::accounts::get_account,
        routes::accounts::update_account,
        routes::contacts::list_contacts,
        routes::contacts::create_contact,
        routes::contacts::get_contact,
        routes::contacts::update_contact,
        routes::contacts::delete_contact,
        routes::contacts::bulk_tag,
        routes::contacts::import_contacts,
        routes::contacts::export_contacts,
        routes::tags::list_tags,
        routes::tags::create_tag,
        routes::tags::update_tag,
        routes::tags::delete_tag,
        routes::groups::list_groups,
        routes::groups::get_group,
        routes::groups::update_group,
        routes::groups::list_members,
        routes::callbacks::wecom_verify,
        routes::callbacks::wecom_event,
                routes::callbacks::agent_event,
        routes::templates::list_templates,
        routes::templates::create_template,
        routes::templates::get_template,
        routes::templates::update_template,
        routes::templates::delete_template,
        routes::templates::preview_template,
        routes::tasks::list_tasks,
        routes::tasks::create_task,
        routes::tasks::get_task,
        routes::tasks::delete_task,
        routes::tasks::pause_task,
        routes::tasks::resume_task,
        routes::tasks::cancel_task,
                routes::tasks::retry_failed,
        routes::tasks::remind_task,
        routes::tasks::list_runs,
        routes::tasks::list_receivers,
        routes::tasks::report_csv,
        routes::tasks::progress_stream,
        routes::messages::send_message,
        routes::messages::list_messages,
    ),
    components(schemas(error::Problem)),
    modifiers(&BearerAuth, &IdempotentCreates, &ProblemResponses, &ParameterShapes),
    tags(
        (name = "auth", description = "Sign in, tokens, own sessions, password and two-factor"),
        (name = "users", description = "User administration"),
        (name = "roles", description = "Roles and the permission catalogue"),
        (name = "audit", description = "Audit log and login history"),
        (name = "instances", description = "WeWork instances: agents and official WeCom apps"),
        (name = "accounts", description = "WeCom accounts on instances"),
        (name = "contacts", description = "Contacts, tags, customer groups and members"),
                (name = "callbacks", description = "Events from instances (signature-verified, public)"),
        (name = "messaging", description = "Templates, message tasks and broadcasts, single messages"),
        (name = "health", description = "Probes and metrics"),
        (name = "logs", description = "System, error and access logs (Elasticsearch or SQL)"),
        (name = "alerts", description = "Alert rules, alerts and their notifications"),
        (name = "monitoring", description = "Health overview and metric series"),
    )
)]
pub struct ApiDoc;

/// The document, built once.
pub fn document() -> &'static utoipa::openapi::OpenApi {
    static DOC: std::sync::OnceLock<utoipa::openapi::OpenApi> = std::sync::OnceLock::new();
    DOC.get_or_init(ApiDoc::openapi)
}

/// The documented route `path` belongs to: its literal path if there is one (`/contacts/tags`
/// rather than `/contacts/{id}`), else the first template it fits.
pub fn route_at(path: &str) -> Option<&'static PathItem> {
    let paths = &document().paths.paths;
    paths.get(path).or_else(|| {
        paths
            .iter()
            .find(|(template, _)| matches_template(template, path))
            .map(|(_, item)| item)
    })
}

/// A documented path with no parameters, exactly `path`.
pub fn literal_route(path: &str) -> Option<&'static PathItem> {
    document().paths.paths.get(path)
}

/// The methods a documented route answers, for `Allow`.
pub fn allowed_methods(item: &PathItem) -> Vec<&'static str> {
    [
        ("GET", &item.get),
        ("POST", &item.post),
        ("PUT", &item.put),
        ("PATCH", &item.patch),
        ("DELETE", &item.delete),
    ]
    .into_iter()
    .filter(|(_, op)| op.is_some())
    .map(|(m, _)| m)
    .collect()
}

fn matches_template(template: &str, path: &str) -> bool {
    let (t, p): (Vec<&str>, Vec<&str>) = (template.split('/').collect(), path.split('/').collect());
    t.len() == p.len()
        && t.iter()
            .zip(&p)
            .all(|(t, p)| (t.starts_with('{') && !p.is_empty()) || t == p)
}

/// Parameters every route shares, shaped once: `{id}` is a positive integer (the `Id` extractor
/// answers 400 otherwise) and `cursor` has the form `service::pagination` issues.
struct ParameterShapes;

impl Modify for ParameterShapes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::{
            ObjectBuilder, RefOr, Type,
            path::ParameterIn,
            schema::{KnownFormat, SchemaFormat},
        };
        for item in openapi.paths.paths.values_mut() {
            for parameter in operations_mut(item)
                .filter_map(|op| op.parameters.as_mut())
                .flatten()
                .filter_map(|p| match p {
                    RefOr::T(parameter) => Some(parameter),
                    RefOr::Ref(_) => None,
                })
            {
                let shape = match (&parameter.parameter_in, parameter.name.as_str()) {
                    (ParameterIn::Path, "id") => ObjectBuilder::new()
                        .schema_type(Type::Integer)
                        .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64)))
                        .minimum(Some(1)),
                    (ParameterIn::Query, "cursor") => ObjectBuilder::new()
                        .schema_type(Type::String)
                        .pattern(Some(service::pagination::CURSOR_PATTERN)),
                    _ => continue,
                };
                parameter.schema = Some(RefOr::T(shape.build().into()));
            }
        }
    }
}

/// Every POST that answers 201 creates something and takes an `Idempotency-Key`
/// (`extract::IdempotencyKey`): the header and its 409 are documented here, once.
struct IdempotentCreates;

impl Modify for IdempotentCreates {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::{
            ObjectBuilder, Ref, RefOr, ResponseBuilder, Type,
            path::{ParameterBuilder, ParameterIn},
        };
        for item in openapi.paths.paths.values_mut() {
            let Some(post) = item.post.as_mut() else {
                continue;
            };
            if !post.responses.responses.contains_key("201") {
                continue;
            }
            let header = ParameterBuilder::new()
                .name(crate::extract::IDEMPOTENCY_HEADER)
                .parameter_in(ParameterIn::Header)
                .description(Some(
                    "Repeat the POST safely: the same key and body return the first answer \
                     (`Idempotent-Replayed: true`); 1 to 255 printable ASCII characters",
                ))
                .schema(Some(
                    ObjectBuilder::new()
                        .schema_type(Type::String)
                        .min_length(Some(1))
                        .max_length(Some(255))
                        .pattern(Some("^[!-~]+$")),
                ))
                .build();
            post.parameters
                .get_or_insert_with(Vec::new)
                .push(header.into());
            post.responses.responses.insert(
                "409".to_owned(),
                RefOr::T(
                    ResponseBuilder::new()
                        .description(
                            "A conflict: the record exists, or the `Idempotency-Key` was used with \
                             another body or its first request is still running",
                        )
                        .content(
                            PROBLEM_JSON,
                            utoipa::openapi::content::Content::new(Some(Ref::from_schema_name(
                                "Problem",
                            ))),
                        )
                        .build(),
                ),
            );
        }
    }
}

/// Every operation of a path, for modifiers that shape them all.
fn operations_mut(
    item: &mut PathItem,
) -> impl Iterator<Item = &mut utoipa::openapi::path::Operation> {
    [
        &mut item.get,
        &mut item.post,
        &mut item.put,
        &mut item.patch,
        &mut item.delete,
    ]
    .into_iter()
    .flatten()
}

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("Opaque access token from POST /api/v1/auth/login"))
                    .build(),
            ),
        );
    }
}

/// Error answers are `application/problem+json` (the per-route annotations name the Problem
/// schema, and utoipa files it under `application/json`). The extractors answer for every route
/// alike — 400 for a malformed body or path parameter, 422 for a body or query that does not
/// fit, 413 and 415 for the body — and any route on the database answers 503 while it is
/// unreachable, so the document says so once, here.
struct ProblemResponses;

const PROBLEM_JSON: &str = "application/problem+json";

impl Modify for ProblemResponses {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::{Ref, RefOr, ResponseBuilder, content::Content};
        for (path, item) in openapi.paths.paths.iter_mut() {
            // Everything under /api/v1 reads the database, so it can find it unreachable.
            let database = path.starts_with("/api/v1/");
            for operation in operations_mut(item) {
                let responses = &mut operation.responses.responses;
                for (status, response) in responses.iter_mut() {
                    let RefOr::T(response) = response else {
                        continue;
                    };
                    if status.starts_with(['4', '5'])
                        && let Some(content) = response.content.shift_remove("application/json")
                    {
                        response.content.insert(PROBLEM_JSON.to_owned(), content);
                    }
                }
                // What a route needs is its `security`: a session (401 without one) and, when it
                // names a permission, that permission (403 without it). Said here, not per route.
                let scopes: Option<Vec<String>> = operation.security.as_ref().and_then(|reqs| {
                    let value = serde_json::to_value(reqs).ok()?;
                    let scopes = value.get(0)?.get("bearer")?.as_array()?.clone();
                    Some(
                        scopes
                            .iter()
                            .filter_map(|s| s.as_str().map(str::to_owned))
                            .collect(),
                    )
                });
                let session: &[(&str, &str)] = match &scopes {
                    None => &[],
                    Some(s) if s.is_empty() => &[(
                        "401",
                        "No session: the bearer token is missing, invalid, expired or revoked",
                    )],
                    Some(_) => &[
                        (
                            "401",
                            "No session: the bearer token is missing, invalid, expired or revoked",
                        ),
                        (
                            "403",
                            "The session lacks the permission named in this operation's security",
                        ),
                    ],
                };
                let body = operation.request_body.is_some();
                let parameters = operation.parameters.as_ref().is_some_and(|p| !p.is_empty());
                let answers: &[(&str, &str)] = match (body, parameters) {
                    (true, _) => &[
                        (
                            "400",
                            "The body is not JSON, or a path parameter does not parse",
                        ),
                        ("413", "The body is larger than `server.max_body_bytes`"),
                        (
                            "415",
                            "The body is not sent with the content type the operation takes",
                        ),
                        ("422", "Invalid fields, each named in `errors`"),
                    ],
                    (false, true) => &[
                        ("400", "A path parameter does not parse"),
                        ("422", "Invalid parameters, each named in `errors`"),
                    ],
                    (false, false) => &[],
                };
                let unreachable: &[(&str, &str)] = if database {
                    &[(
                        "503",
                        "The database or another dependency is unreachable; `Retry-After` says when to retry",
                    )]
                } else {
                    &[]
                };
                for &(status, description) in session.iter().chain(answers).chain(unreachable) {
                    responses.entry(status.to_owned()).or_insert_with(|| {
                        RefOr::T(
                            ResponseBuilder::new()
                                .description(description)
                                .content(
                                    PROBLEM_JSON,
                                    Content::new(Some(Ref::from_schema_name("Problem"))),
                                )
                                .build(),
                        )
                    });
                }
            }
        }
    }
}
