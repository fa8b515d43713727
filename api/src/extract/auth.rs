//! `Authorized<P>`: the caller holds a valid access token and permission `P`. Decided from what
//! the `authenticate` middleware found, synchronously, so it answers before any other extractor:
//! missing or bad token → 401; missing permission → 403, logged and audited.

use std::{
    future::{Ready, ready},
    marker::PhantomData,
};

use actix_web::{FromRequest, HttpMessage, HttpRequest, dev::Payload, web};
use service::{
    ServiceError,
    audit::{self, AuditEntry, OperationType},
    auth::actor::Actor,
    error::AuthFailure,
    rbac::perm::Permission,
};

use crate::{error::ApiError, middleware::AuthOutcome, state::AppState};

pub struct Authorized<P: Permission> {
    pub actor: Actor,
    _permission: PhantomData<P>,
}

/// A valid session, whatever its permissions: only for ending that session (logout).
pub struct Authenticated {
    pub actor: Actor,
}

fn actor(req: &HttpRequest) -> Result<Actor, ApiError> {
    match req.extensions().get::<AuthOutcome>() {
        Some(AuthOutcome::Authenticated(actor)) => Ok(actor.clone()),
        Some(AuthOutcome::Rejected(failure)) => Err(ServiceError::Unauthenticated(*failure).into()),
        Some(AuthOutcome::CsrfMissing) => Err(ServiceError::Forbidden(format!(
            "a console session must send its `{}` header with every request that changes something",
            crate::session_cookie::CSRF_HEADER
        ))
        .into()),
        None => Err(ServiceError::Unauthenticated(AuthFailure::MissingToken).into()),
    }
}

impl<P: Permission> FromRequest for Authorized<P> {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(actor(req).and_then(|actor| match actor.require_named(P::NAME) {
            Ok(()) => Ok(Self { actor, _permission: PhantomData }),
            Err(denied) => {
                let route = format!("{} {}", req.method(), req.match_pattern().unwrap_or_else(|| req.path().to_owned()));
                tracing::warn!(user.id = ?actor.user_id, permission = P::NAME, %route, "authorization denied");
                if let Some(state) = req.app_data::<web::Data<AppState>>().cloned() {
                    let entry = AuditEntry::new("authorization.denied", OperationType::Security, "route")
                        .extra(serde_json::json!({ "permission": P::NAME, "route": route }));
                    let error = ServiceError::Forbidden(denied.to_string());
                    // Written off the request path; the 403 does not wait for it.
                    actix_web::rt::spawn(async move { audit::record_failure(&state.ctx, &actor, entry, &error).await });
                }
                Err(denied.into())
            }
        }))
    }
}

impl FromRequest for Authenticated {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(actor(req).map(|actor| Self { actor }))
    }
}

/// A route anyone may call: probes, sign-in and the signature-verified callbacks. Taking it as
/// the first argument is how a handler says so; see [`Guard`].
pub struct Public;

impl FromRequest for Public {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(_: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(Ok(Self))
    }
}

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// No session needed.
    Public,
    /// Any signed-in session.
    Session,
    /// A session holding this permission.
    Permission(&'static str),
}

/// The extractors a handler may take first: every handler starts with one, so what a route
/// needs is written once, in that type, and the OpenAPI document reads it from there
/// (`routes::table`). A handler that starts with anything else does not compile into the table.
pub trait Guard {
    const ACCESS: Access;
}

impl<P: Permission> Guard for Authorized<P> {
    const ACCESS: Access = Access::Permission(P::NAME);
}

impl Guard for Authenticated {
    const ACCESS: Access = Access::Session;
}

impl Guard for Public {
    const ACCESS: Access = Access::Public;
}

/// A handler whose first argument is a [`Guard`].
pub trait GuardedHandler<Args> {
    const ACCESS: Access;
}

macro_rules! guarded_handler {
    ($($arg:ident),*) => {
        impl<F, R, G: Guard, $($arg,)*> GuardedHandler<(G, $($arg,)*)> for F
        where
            F: Fn(G, $($arg),*) -> R,
        {
            const ACCESS: Access = G::ACCESS;
        }
    };
}

guarded_handler!();
guarded_handler!(A1);
guarded_handler!(A1, A2);
guarded_handler!(A1, A2, A3);
guarded_handler!(A1, A2, A3, A4);
guarded_handler!(A1, A2, A3, A4, A5);
guarded_handler!(A1, A2, A3, A4, A5, A6);
guarded_handler!(A1, A2, A3, A4, A5, A6, A7);
guarded_handler!(A1, A2, A3, A4, A5, A6, A7, A8);

/// What `handler` needs, read from the type of its first argument.
pub fn access_of<F: GuardedHandler<Args>, Args>(_handler: &F) -> Access {
    F::ACCESS
}
