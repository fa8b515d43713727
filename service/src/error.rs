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

impl ServiceError {
    /// The database could not be reached at all (server down or restarting, connection lost,
    /// pool timed out), as opposed to a statement that failed: callers may retry shortly, and
    /// the API answers 503 rather than 500.
    pub fn is_database_unreachable(&self) -> bool {
        match self {
            Self::Database(e) => database_unreachable(e),
            _ => false,
        }
    }
}

fn database_unreachable(e: &sea_orm::DbErr) -> bool {
    use sea_orm::{DbErr, RuntimeErr, sqlx};
    let runtime = match e {
        DbErr::ConnectionAcquire(_) => return true,
        DbErr::Conn(r) | DbErr::Exec(r) | DbErr::Query(r) => r,
        _ => return false,
    };
    let RuntimeErr::SqlxError(e) = runtime else {
        return false;
    };
    match &**e {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        // PostgreSQL shutting down, starting up or cut off (classes 57P and 08).
        sqlx::Error::Database(db) => db
            .code()
            .is_some_and(|c| c.starts_with("57P") || c.starts_with("08")),
        _ => false,
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use sea_orm::{ConnAcquireErr, DbErr, RuntimeErr, sqlx};

    use super::*;

    fn sqlx_err(e: sqlx::Error) -> ServiceError {
        ServiceError::Database(DbErr::Query(RuntimeErr::SqlxError(Arc::new(e))))
    }

    #[test]
    fn an_unreachable_database_is_told_apart_from_a_failing_statement() {
        let timeout = ServiceError::Database(DbErr::ConnectionAcquire(ConnAcquireErr::Timeout));
        assert!(timeout.is_database_unreachable());
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        assert!(sqlx_err(sqlx::Error::Io(refused)).is_database_unreachable());
        assert!(sqlx_err(sqlx::Error::PoolClosed).is_database_unreachable());
        assert!(!sqlx_err(sqlx::Error::RowNotFound).is_database_unreachable());
        assert!(!ServiceError::Database(DbErr::Custom("bad".into())).is_database_unreachable());
        assert!(!ServiceError::NotFound("task").is_database_unreachable());
    }
}
