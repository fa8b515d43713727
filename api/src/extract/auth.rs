//! `Authorized<P>`: the caller holds a valid access token and permission `P`, checked before the
//! handler runs. Missing or bad token → 401; missing permission → 403, logged and audited.

use std::{future::Future, marker::PhantomData, pin::Pin};

use actix_web::{FromRequest, HttpRequest, dev::Payload, web};
use service::{
    ServiceError,
    audit::{self, AuditEntry, OperationType},
    auth::{self as auth_service, actor::Actor},
    error::AuthFailure,
    rbac::perm::Permission,
};

use super::client::request_meta;
use crate::{error::ApiError, state::AppState};

pub struct Authorized<P: Permission> {
    pub actor: Actor,
    _permission: PhantomData<P>,
}

/// A valid session, whatever its permissions: only for ending that session (logout).
pub struct Authenticated {
    pub actor: Actor,
}

fn bearer(req: &HttpRequest) -> Result<String, ApiError> {
    let header = req
        .headers()
        .get(actix_web::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .ok_or(ApiError::Service(ServiceError::Unauthenticated(
            AuthFailure::MissingToken,
        )))?;
    let (scheme, token) = header.split_once(' ').unwrap_or((header, ""));
    if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
        return Err(ApiError::Service(ServiceError::Unauthenticated(
            AuthFailure::MissingToken,
        )));
    }
    Ok(token.trim().to_owned())
}

type Fut<T> = Pin<Box<dyn Future<Output = Result<T, ApiError>>>>;

fn authenticate(req: &HttpRequest) -> Fut<(Actor, web::Data<AppState>)> {
    let state = req.app_data::<web::Data<AppState>>().cloned();
    let token = bearer(req);
    let meta = state
        .as_ref()
        .map(|s| request_meta(req, &s.ctx.settings.server.trusted_proxies));
    Box::pin(async move {
        let (Some(state), Some(meta)) = (state, meta) else {
            return Err(ApiError::Service(ServiceError::Internal(anyhow::anyhow!(
                "application state missing"
            ))));
        };
        let actor = auth_service::authenticate(&state.ctx, &token?, meta).await?;
        Ok((actor, state))
    })
}

impl<P: Permission> FromRequest for Authorized<P> {
    type Error = ApiError;
    type Future = Fut<Self>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let authenticated = authenticate(req);
        let route = format!(
            "{} {}",
            req.method(),
            req.match_pattern().unwrap_or_else(|| req.path().to_owned())
        );
        Box::pin(async move {
            let (actor, state) = authenticated.await?;
            if let Err(denied) = actor.require(P::NAME) {
                tracing::warn!(user.id = ?actor.user_id, permission = P::NAME, %route, "authorization denied");
                let entry =
                    AuditEntry::new("authorization.denied", OperationType::Security, "route")
                        .extra(serde_json::json!({ "permission": P::NAME, "route": route }));
                audit::record_failure(&state.ctx, &actor, entry, &denied).await;
                return Err(denied.into());
            }
            Ok(Self {
                actor,
                _permission: PhantomData,
            })
        })
    }
}

impl FromRequest for Authenticated {
    type Error = ApiError;
    type Future = Fut<Self>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let authenticated = authenticate(req);
        Box::pin(async move {
            Ok(Self {
                actor: authenticated.await?.0,
            })
        })
    }
}
