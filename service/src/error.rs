//! Domain errors. No HTTP here: the api crate maps each variant to a status and problem type.

use chrono::{DateTime, Utc};
use serde::Serialize;

/// One invalid input, named by its JSON path (`email`, `roles[2].expires_at`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// Why a caller is not authenticated; each has a stable code clients can branch on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthFailure {
    MissingToken,
    InvalidToken,
    InvalidCredentials,
    TotpRequired,
    TotpInvalid,
    RefreshTokenReused,
}

impl AuthFailure {
    pub fn code(self) -> &'static str {
        match self {
            Self::MissingToken => "missing_token",
            Self::InvalidToken => "invalid_token",
            Self::InvalidCredentials => "invalid_credentials",
            Self::TotpRequired => "totp_required",
            Self::TotpInvalid => "totp_invalid",
            Self::RefreshTokenReused => "refresh_token_reused",
        }
    }

    pub fn message(self) -> &'static str {
        match self {
            Self::MissingToken => "an `Authorization: Bearer` access token is required",
            Self::InvalidToken => "the token is invalid, expired or revoked",
            Self::InvalidCredentials => "the login name or password is wrong",
            Self::TotpRequired => "this account uses two-factor authentication: send `totp_code`",
            Self::TotpInvalid => "the two-factor code is wrong or was already used",
            Self::RefreshTokenReused => {
                "this refresh token was already used; the session has been revoked"
            }
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("{message}")]
    Conflict {
        field: Option<String>,
        message: String,
    },
    #[error("validation failed")]
    Validation(Vec<FieldError>),
    #[error("{}", .0.message())]
    Unauthenticated(AuthFailure),
    #[error("{0}")]
    Forbidden(String),
    #[error("the account is locked until {until}")]
    Locked { until: DateTime<Utc> },
    #[error("the account is disabled")]
    Disabled,
    #[error("too many attempts; retry in {retry_after_secs} s")]
    TooManyRequests { retry_after_secs: u64 },
    #[error("{0}")]
    Unavailable(String),
    #[error("database error: {0}")]
    Database(#[from] sea_orm::DbErr),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl ServiceError {
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Validation(vec![FieldError::new(field, message)])
    }

    pub fn conflict(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Conflict {
            field: Some(field.into()),
            message: message.into(),
        }
    }
}

impl From<sea_orm::TransactionError<ServiceError>> for ServiceError {
    fn from(e: sea_orm::TransactionError<ServiceError>) -> Self {
        match e {
            sea_orm::TransactionError::Connection(db) => Self::Database(db),
            sea_orm::TransactionError::Transaction(inner) => inner,
        }
    }
}

pub type ServiceResult<T> = Result<T, ServiceError>;
