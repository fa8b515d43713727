//! Typed path parameters whose parse errors name the parameter.

use std::future::{Ready, ready};

use actix_web::{FromRequest, HttpRequest, dev::Payload};
use uuid::Uuid;

use crate::error::ApiError;

/// The parameter, or why not. A segment that is not a parameter at all but names a sibling
/// route (`PATCH /contacts/tags` reaching `/contacts/{id}`) is a wrong method for that route.
fn param<T: std::str::FromStr>(
    req: &HttpRequest,
    name: &str,
    expected: &str,
) -> Result<T, ApiError> {
    req.match_info()
        .get(name)
        .and_then(|raw| raw.parse().ok())
        .ok_or_else(|| match crate::openapi::literal_route(req.path()) {
            Some(route) => ApiError::method_not_allowed(route),
            None => ApiError::BadParameter {
                field: name.to_owned(),
                message: format!("must be {expected}"),
            },
        })
}

/// A segment that must be a positive 64-bit integer.
fn positive(req: &HttpRequest, name: &str) -> Result<i64, ApiError> {
    param::<i64>(req, name, "a positive integer").and_then(|id| {
        if id > 0 {
            Ok(id)
        } else {
            Err(ApiError::BadParameter {
                field: name.to_owned(),
                message: "must be a positive integer".to_owned(),
            })
        }
    })
}

/// The `{id}` segment: a positive 64-bit integer.
pub struct Id(pub i64);

impl FromRequest for Id {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(positive(req, "id").map(Id))
    }
}

/// The `{agent_id}` segment: a positive 64-bit integer.
pub struct AgentId(pub i64);

impl FromRequest for AgentId {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(positive(req, "agent_id").map(AgentId))
    }
}

/// The `{session_id}` segment: a UUID.
pub struct SessionId(pub Uuid);

impl FromRequest for SessionId {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(param::<Uuid>(req, "session_id", "a UUID").map(SessionId))
    }
}
