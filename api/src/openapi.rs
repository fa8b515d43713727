//! The OpenAPI document. Each operation's `security` names the permission it needs
//! (`bearer: ["users:read"]`), an empty list means "any signed-in session", and `security: [{}]`
//! marks the public routes — the route-walking test reads exactly this.

use utoipa::{
    Modify, OpenApi,
    openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme},
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
    ),
    components(schemas(error::Problem)),
    modifiers(&BearerAuth),
    tags(
        (name = "auth", description = "Sign in, tokens, own sessions, password and two-factor"),
        (name = "users", description = "User administration"),
        (name = "roles", description = "Roles and the permission catalogue"),
        (name = "audit", description = "Audit log and login history"),
        (name = "health", description = "Probes and metrics"),
    )
)]
pub struct ApiDoc;

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
