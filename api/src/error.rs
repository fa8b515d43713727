//! One error type for every handler, rendered as RFC 9457 `application/problem+json`.

use actix_web::{HttpResponse, ResponseError, http::StatusCode};
use serde::Serialize;
use service::{FieldError, ServiceError};

use crate::middleware::request_context;

/// What a client is told to wait when the database is unreachable (a restart or fail-over).
const DATABASE_RETRY_AFTER_SECS: u64 = 5;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error(transparent)]
    Service(#[from] ServiceError),
    #[error("the request body is not valid JSON: {0}")]
    MalformedJson(String),
    #[error("the request is invalid")]
    Validation(Vec<FieldError>),
    #[error("`{field}` {message}")]
    BadParameter { field: String, message: String },
    #[error("the request body exceeds {0} bytes")]
    PayloadTooLarge(usize),
    #[error("send the body as `Content-Type: application/json`")]
    UnsupportedMediaType,
    #[error("no route matches this path")]
    RouteNotFound,
    /// `allow` lists the methods the path answers (the `Allow` header RFC 9110 asks for).
    #[error("this method is not allowed here; allowed: {allow}")]
    MethodNotAllowed { allow: String },
}

/// The problem document. `errors` lists every invalid field; `request_id` ties it to server logs.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Problem {
    /// URI reference naming the problem type (`/docs/problems#<code>`).
    #[serde(rename = "type")]
    pub problem_type: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    /// The request path the problem occurred on.
    pub instance: Option<String>,
    /// Stable machine-readable code.
    pub code: String,
    pub request_id: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    #[schema(value_type = Vec<FieldErrorDoc>)]
    pub errors: Vec<FieldError>,
    /// Seconds to wait before retrying (429, 423, and 503 while the database is unreachable or
    /// after a lost lock conflict).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_after: Option<u64>,
}

#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct FieldErrorDoc {
    field: String,
    message: String,
}

impl ApiError {
    /// The request's method is not one `route` answers.
    pub fn method_not_allowed(route: &utoipa::openapi::PathItem) -> Self {
        Self::MethodNotAllowed {
            allow: crate::openapi::allowed_methods(route).join(", "),
        }
    }

    /// The status and the stable code of each error, decided in one place.
    fn kind(&self) -> (StatusCode, &'static str) {
        match self {
            Self::Service(e) => match e {
                ServiceError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
                ServiceError::Conflict { .. } => (StatusCode::CONFLICT, "conflict"),
                ServiceError::Validation(_) => {
                    (StatusCode::UNPROCESSABLE_ENTITY, "validation_failed")
                }
                ServiceError::Unauthenticated(f) => (StatusCode::UNAUTHORIZED, f.code()),
                ServiceError::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
                ServiceError::Disabled => (StatusCode::FORBIDDEN, "account_disabled"),
                ServiceError::Locked { .. } => (StatusCode::LOCKED, "account_locked"),
                ServiceError::TooManyRequests { .. } => {
                    (StatusCode::TOO_MANY_REQUESTS, "too_many_requests")
                }
                ServiceError::Unavailable(_) => {
                    (StatusCode::SERVICE_UNAVAILABLE, "service_unavailable")
                }
                e if e.is_database_unreachable() => {
                    (StatusCode::SERVICE_UNAVAILABLE, "database_unavailable")
                }
                e if e.is_lock_conflict() => (StatusCode::SERVICE_UNAVAILABLE, "lock_conflict"),
                // Two requests passed the application's check together and the unique index
                // kept the second out: the same answer the check gives, never a 500.
                e if e.is_unique_violation() => (StatusCode::CONFLICT, "conflict"),
                ServiceError::Database(_) | ServiceError::Internal(_) => {
                    (StatusCode::INTERNAL_SERVER_ERROR, "internal_error")
                }
            },
            Self::MalformedJson(_) => (StatusCode::BAD_REQUEST, "malformed_json"),
            Self::BadParameter { .. } => (StatusCode::BAD_REQUEST, "invalid_parameter"),
            Self::Validation(_) => (StatusCode::UNPROCESSABLE_ENTITY, "validation_failed"),
            Self::PayloadTooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
            Self::UnsupportedMediaType => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")
            }
            Self::RouteNotFound => (StatusCode::NOT_FOUND, "route_not_found"),
            Self::MethodNotAllowed { .. } => (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
        }
    }

    fn code(&self) -> &'static str {
        self.kind().1
    }

    fn title(&self) -> &'static str {
        match self.status_code() {
            StatusCode::BAD_REQUEST => "Bad request",
            StatusCode::UNAUTHORIZED => "Authentication required",
            StatusCode::FORBIDDEN => "Forbidden",
            StatusCode::NOT_FOUND => "Not found",
            StatusCode::METHOD_NOT_ALLOWED => "Method not allowed",
            StatusCode::CONFLICT => "Conflict",
            StatusCode::PAYLOAD_TOO_LARGE => "Payload too large",
            StatusCode::UNSUPPORTED_MEDIA_TYPE => "Unsupported media type",
            StatusCode::UNPROCESSABLE_ENTITY => "Validation failed",
            StatusCode::LOCKED => "Account locked",
            StatusCode::TOO_MANY_REQUESTS => "Too many requests",
            StatusCode::SERVICE_UNAVAILABLE => "Service unavailable",
            _ => "Internal server error",
        }
    }

    fn retry_after(&self, now: chrono::DateTime<chrono::Utc>) -> Option<u64> {
        match self {
            Self::Service(ServiceError::TooManyRequests { retry_after_secs }) => {
                Some(*retry_after_secs)
            }
            Self::Service(ServiceError::Locked { until }) => {
                Some(u64::try_from((*until - now).num_seconds().max(1)).unwrap_or(1))
            }
            Self::Service(e) if e.is_database_unreachable() => Some(DATABASE_RETRY_AFTER_SECS),
            // Lost a lock conflict: nothing changed, and the next attempt usually wins.
            Self::Service(e) if e.is_lock_conflict() => Some(1),
            _ => None,
        }
    }

    fn field_errors(&self) -> Vec<FieldError> {
        match self {
            Self::Validation(errors) | Self::Service(ServiceError::Validation(errors)) => {
                errors.clone()
            }
            Self::Service(ServiceError::Conflict {
                field: Some(field),
                message,
            }) => {
                vec![FieldError::new(field.clone(), message.clone())]
            }
            Self::BadParameter { field, message } => {
                vec![FieldError::new(field.clone(), message.clone())]
            }
            _ => Vec::new(),
        }
    }

    fn is_internal(&self) -> bool {
        self.status_code().is_server_error()
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.kind().0
    }

    fn error_response(&self) -> HttpResponse {
        let context = request_context();
        let request_id = context.as_ref().map(|c| c.request_id.clone());
        let detail = if self.is_internal() {
            // The cause chain goes to the log once, here; the client gets only the request id.
            tracing::error!(request_id = request_id.as_deref().unwrap_or("-"), error = ?self, "request failed");
            "an internal error occurred; quote the request_id when reporting it".to_owned()
        } else if matches!(self, Self::Service(e) if e.is_unique_violation()) {
            // The database's words would name its indexes: say what happened instead.
            "another request stored the same record at the same moment; reload and retry".to_owned()
        } else {
            self.to_string()
        };
        let code = self.code();
        let retry_after = self.retry_after(chrono::Utc::now());
        let problem = Problem {
            problem_type: format!("/docs/problems#{code}"),
            title: self.title().to_owned(),
            status: self.status_code().as_u16(),
            detail,
            instance: context.map(|c| c.path),
            code: code.to_owned(),
            request_id,
            errors: self.field_errors(),
            retry_after,
        };
        let mut response = HttpResponse::build(self.status_code());
        response.content_type("application/problem+json");
        if let Some(seconds) = retry_after {
            response.insert_header(("Retry-After", seconds.to_string()));
        }
        if matches!(self, Self::Service(ServiceError::Unauthenticated(_))) {
            response.insert_header(("WWW-Authenticate", "Bearer"));
        }
        if let Self::MethodNotAllowed { allow } = self {
            response.insert_header(("Allow", allow.as_str()));
        }
        response.body(serde_json::to_string(&problem).unwrap_or_default())
    }
}
