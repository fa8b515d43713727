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

    /// The statement broke a unique index: a concurrent request stored the same key first. The
    /// caller says which field it was (a 409 naming it, not a 500).
    pub fn is_unique_violation(&self) -> bool {
        matches!(
            self,
            Self::Database(e) if matches!(e.sql_err(), Some(sea_orm::SqlErr::UniqueConstraintViolation(_)))
        )
    }

    /// The statement lost a lock conflict (a deadlock, a lock wait timeout, a serialization
    /// failure, a busy SQLite): nothing was changed and the same request may simply run again.
    pub fn is_lock_conflict(&self) -> bool {
        let Self::Database(e) = self else {
            return false;
        };
        database_error(e).is_some_and(|db| {
            lock_conflict_code(
                db.code().as_deref(),
                db.try_downcast_ref::<sea_orm::sqlx::mysql::MySqlDatabaseError>()
                    .map(sea_orm::sqlx::mysql::MySqlDatabaseError::number),
                db.try_downcast_ref::<sea_orm::sqlx::sqlite::SqliteError>()
                    .is_some(),
            )
        })
    }
}

/// The error the database server reported, if that is what `e` is.
fn database_error(
    e: &sea_orm::DbErr,
) -> Option<&(dyn sea_orm::sqlx::error::DatabaseError + 'static)> {
    use sea_orm::{DbErr, RuntimeErr, sqlx};
    let (DbErr::Conn(RuntimeErr::SqlxError(e))
    | DbErr::Exec(RuntimeErr::SqlxError(e))
    | DbErr::Query(RuntimeErr::SqlxError(e))) = e
    else {
        return None;
    };
    match &**e {
        sqlx::Error::Database(db) => Some(&**db),
        _ => None,
    }
}

/// Classifies by SQLSTATE and, where SQLSTATE is too coarse, the vendor's code: `40001`
/// (serialization failure; MySQL reports its deadlock 1213 under it too), `40P01` (PostgreSQL
/// deadlock), `55P03` (PostgreSQL lock not available), MySQL 1205 (lock wait timeout, `HY000`),
/// and SQLite's `SQLITE_BUSY` / `SQLITE_LOCKED` with any extended code.
fn lock_conflict_code(code: Option<&str>, mysql_number: Option<u16>, sqlite: bool) -> bool {
    if let Some(number) = mysql_number {
        return matches!(number, 1205 | 1213);
    }
    let Some(code) = code else {
        return false;
    };
    if sqlite {
        return code.parse::<i32>().is_ok_and(|c| matches!(c & 0xff, 5 | 6));
    }
    matches!(code, "40001" | "40P01" | "55P03")
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
    fn lock_conflicts_are_told_by_their_codes() {
        // (SQLSTATE or SQLite code, MySQL number, from SQLite, lost a lock conflict, what)
        let cases = [
            (Some("40P01"), None, false, true, "PostgreSQL deadlock"),
            (Some("40001"), None, false, true, "serialization failure"),
            (
                Some("55P03"),
                None,
                false,
                true,
                "NOWAIT lock not available",
            ),
            (Some("23505"), None, false, false, "unique violation"),
            (Some("40001"), Some(1213), false, true, "MySQL deadlock"),
            (
                Some("HY000"),
                Some(1205),
                false,
                true,
                "MySQL lock wait timeout",
            ),
            (
                Some("23000"),
                Some(1062),
                false,
                false,
                "MySQL duplicate key",
            ),
            (Some("5"), None, true, true, "SQLITE_BUSY"),
            (Some("517"), None, true, true, "SQLITE_BUSY_SNAPSHOT"),
            (Some("262"), None, true, true, "SQLITE_LOCKED_SHAREDCACHE"),
            (Some("2067"), None, true, false, "SQLITE_CONSTRAINT_UNIQUE"),
            (None, None, false, false, "no code"),
        ];
        for (code, number, sqlite, conflict, what) in cases {
            assert_eq!(lock_conflict_code(code, number, sqlite), conflict, "{what}");
        }
        assert!(!ServiceError::NotFound("task").is_lock_conflict());
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
