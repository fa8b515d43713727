//! Login history: every attempt, successful or not, with address, agent, result and reason.

use crate::rbac::perm;
use entity::login_logs;
use sea_orm::{ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};

use super::actor::{Actor, RequestMeta};
use crate::{
    Context, ServiceResult,
    pagination::{Page, PageRequest},
};

#[derive(Debug, Clone, Copy)]
pub enum LoginOutcome {
    Success,
    Failure(&'static str),
}

/// Best effort: a login must not fail because its history row could not be written.
pub async fn write(
    ctx: &Context,
    user_id: Option<i64>,
    login_name: &str,
    meta: &RequestMeta,
    outcome: LoginOutcome,
) {
    let (result, reason) = match outcome {
        LoginOutcome::Success => ("success", None),
        LoginOutcome::Failure(reason) => ("failure", Some(reason.to_owned())),
    };
    let row = login_logs::ActiveModel {
        user_id: Set(user_id),
        login_name: Set(login_name.chars().take(100).collect()),
        ip_address: Set(meta.ip.chars().take(45).collect()),
        user_agent: Set(meta
            .user_agent
            .as_ref()
            .map(|u| u.chars().take(512).collect())),
        result: Set(result.to_owned()),
        reason: Set(reason),
        created_at: Set(ctx.clock.now_db()),
        ..Default::default()
    };
    if let Err(e) = login_logs::Entity::insert(row)
        .exec_without_returning(&ctx.db)
        .await
    {
        tracing::error!(error = %e, "could not write login history");
    }
}

#[derive(Debug, Clone, Default)]
pub struct LoginLogFilter {
    pub user_id: Option<i64>,
    pub ip: Option<String>,
    pub result: Option<String>,
    pub from: Option<chrono::NaiveDateTime>,
    pub to: Option<chrono::NaiveDateTime>,
}

pub async fn list(
    ctx: &Context,
    actor: &Actor,
    filter: LoginLogFilter,
    page: PageRequest,
) -> ServiceResult<Page<login_logs::Model>> {
    actor.require(perm::LoginLogsRead)?;
    let mut query = login_logs::Entity::find();
    if let Some(v) = filter.user_id {
        query = query.filter(login_logs::Column::UserId.eq(v));
    }
    if let Some(v) = filter.ip {
        query = query.filter(login_logs::Column::IpAddress.eq(v));
    }
    if let Some(v) = filter.result {
        query = query.filter(login_logs::Column::Result.eq(v));
    }
    if let Some(v) = filter.from {
        query = query.filter(login_logs::Column::CreatedAt.gte(v));
    }
    if let Some(v) = filter.to {
        query = query.filter(login_logs::Column::CreatedAt.lt(v));
    }
    if let Some(before) = page.before {
        query = query.filter(login_logs::Column::Id.lt(before));
    }
    let rows = query
        .order_by_desc(login_logs::Column::Id)
        .limit(page.fetch())
        .all(&ctx.db)
        .await?;
    Ok(Page::from_rows(page, rows, |r| r.id, |r| r))
}
