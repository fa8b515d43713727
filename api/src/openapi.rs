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

use crate::{error, extract::Access, routes};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "wework API",
        description = "WeCom (企业微信) automation and broadcast platform. Errors are RFC 9457 \
            `application/problem+json`; lists use keyset pagination (`limit`, `cursor` → \
            `next_cursor`). Each operation's security requirement names the permission it needs.",
    ),
    components(schemas(error::Problem)),
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
        (name = "desk", description = "Customer-service desk: conversations, agents, skill groups, channels, visitors, quick replies and the live event stream"),
    )
)]
pub struct ApiDoc;

/// The document, built once.
pub fn document() -> &'static utoipa::openapi::OpenApi {
    static DOC: std::sync::OnceLock<utoipa::openapi::OpenApi> = std::sync::OnceLock::new();
    DOC.get_or_init(|| {
        let mut doc = ApiDoc::openapi();
        doc.merge(routes::table::RoutePaths::openapi());
        let modifiers: [&dyn Modify; 5] = [
            &BearerAuth,
            &HandlerSecurity,
            &IdempotentCreates,
            &ProblemResponses,
            &ParameterShapes,
        ];
        for modifier in modifiers {
            modifier.modify(&mut doc);
        }
        doc
    })
}

/// Each operation's `security`, read from its handler's first argument (`routes::table`), so no
/// handler names its permission a second time in `#[utoipa::path]`.
struct HandlerSecurity;

impl Modify for HandlerSecurity {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::SecurityRequirement;
        let accesses: std::collections::HashMap<_, _> =
            routes::table::accesses().into_iter().collect();
        for operation in openapi.paths.paths.values_mut().flat_map(operations_mut) {
            let Some(access) = operation
                .operation_id
                .as_deref()
                .and_then(|id| accesses.get(id))
            else {
                continue;
            };
            let requirement = match access {
                Access::Public => SecurityRequirement::default(),
                Access::Session => SecurityRequirement::new("bearer", Vec::<String>::new()),
                Access::Permission(name) => SecurityRequirement::new("bearer", [*name]),
            };
            operation.security = Some(vec![requirement]);
        }
    }
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

/// Parameters every route shares, shaped once: `{id}` and `{agent_id}` are positive integers
/// (the `Id` and `AgentId` extractors answer 400 otherwise) and `cursor` has the form `service::pagination` issues.
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
                    (ParameterIn::Path, "id" | "agent_id") => ObjectBuilder::new()
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
