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
