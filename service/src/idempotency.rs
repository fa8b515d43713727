//! `Idempotency-Key` for POSTs that create things: the first request with a key does the work
//! and its answer is stored; a repeat (same key, same body) gets the stored answer; the same key
//! with another body is refused. A unique (scope, key) index decides races: of two concurrent
//! identical requests exactly one does the work.

use chrono::TimeDelta;
use entity::idempotency_keys;
use entity::states::IdempotencyState;
use sea_orm::{ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter, sea_query::Expr};
use sha2::{Digest, Sha256};

use crate::{Context, ServiceError, ServiceResult};

/// How long a key is remembered.
const TTL_HOURS: i64 = 24;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// Do the work, then `complete` (or `release` on failure) this row.
    New(i64),
    /// The first request's answer.
    Replay { status: u16, body: String },
}

pub fn hash(body: &[u8]) -> String {
    Sha256::digest(body)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Keys are 1–255 printable ASCII characters.
pub fn check_key(key: &str) -> ServiceResult<()> {
    if key.is_empty() || key.len() > 255 || !key.bytes().all(|b| (0x21..0x7f).contains(&b)) {
        return Err(ServiceError::invalid(
            "Idempotency-Key",
            "must be 1 to 255 printable ASCII characters",
        ));
    }
    Ok(())
}

pub async fn claim(
    ctx: &Context,
    scope: &str,
    key: &str,
    request_hash: &str,
) -> ServiceResult<Claim> {
    check_key(key)?;
    let now = ctx.clock.now_db();
    let row = idempotency_keys::ActiveModel {
        scope: Set(scope.chars().take(100).collect()),
        idem_key: Set(key.to_owned()),
        request_hash: Set(request_hash.to_owned()),
        state: Set(IdempotencyState::InProgress),
        created_at: Set(now),
        expires_at: Set(now + TimeDelta::hours(TTL_HOURS)),
        ..Default::default()
    };
    if let Ok(inserted) = idempotency_keys::Entity::insert(row).exec(&ctx.db).await {
        return Ok(Claim::New(inserted.last_insert_id));
    }
    let existing = idempotency_keys::Entity::find()
        .filter(idempotency_keys::Column::Scope.eq(scope))
        .filter(idempotency_keys::Column::IdemKey.eq(key))
        .one(&ctx.db)
        .await?
        .ok_or_else(|| {
            ServiceError::Unavailable("could not record the Idempotency-Key; retry".into())
        })?;
    if existing.request_hash != request_hash {
        return Err(ServiceError::conflict(
            "Idempotency-Key",
            "was already used with a different request body",
        ));
    }
    match (
        existing.state,
        existing.response_status,
        existing.response_body,
    ) {
        (IdempotencyState::Completed, Some(status), Some(body)) => Ok(Claim::Replay {
            status: u16::try_from(status).unwrap_or(200),
            body,
        }),
        _ => Err(ServiceError::conflict(
            "Idempotency-Key",
            "a request with this key is still being processed; retry shortly",
        )),
    }
}

pub async fn complete(ctx: &Context, id: i64, status: u16, body: &str) -> ServiceResult<()> {
    idempotency_keys::Entity::update_many()
        .col_expr(
            idempotency_keys::Column::State,
            Expr::value(IdempotencyState::Completed),
        )
        .col_expr(
            idempotency_keys::Column::ResponseStatus,
            Expr::value(i32::from(status)),
        )
        .col_expr(idempotency_keys::Column::ResponseBody, Expr::value(body))
        .filter(idempotency_keys::Column::Id.eq(id))
        .exec(&ctx.db)
        .await?;
    Ok(())
}

/// Forgets a key whose request failed, so the client may retry with it.
pub async fn release(ctx: &Context, id: i64) {
    if let Err(e) = idempotency_keys::Entity::delete_by_id(id)
        .exec(&ctx.db)
        .await
    {
        tracing::warn!(error = %e, "could not release an idempotency key");
    }
}
