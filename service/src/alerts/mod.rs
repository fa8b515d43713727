//! Alerts: rules (`rules`) evaluated by the worker (`evaluate`), records that go
//! ACTIVE → ACKNOWLEDGED → RESOLVED (one open record per condition, resolved by itself when the
//! condition clears), and notifications to WeCom group robots and signed webhooks (`notify`).

pub mod evaluate;
pub mod notify;
pub mod rules;

use crate::rbac::perm;
use chrono::{DateTime, Utc};
use entity::alert_records;
use entity::states::{AlertLevel, AlertStatus};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
    sea_query::Expr,
};
use serde::{Deserialize, Serialize};

use crate::{
    Context, ServiceError, ServiceResult,
    audit::{self, AuditEntry, OperationType},
    auth::actor::Actor,
    clock::to_utc,
    pagination::{Page, PageRequest},
};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct AlertView {
    pub id: i64,
    pub alert_uuid: uuid::Uuid,
    pub rule_id: Option<i64>,
    pub rule_name: String,
    /// One open alert per key: the rule and what it is about (e.g. `rule:3:instance:7`).
    pub dedupe_key: String,
    pub level: AlertLevel,
    pub title: String,
    pub message: String,
    pub metric_name: Option<String>,
    pub metric_value: Option<f64>,
    pub threshold_value: Option<f64>,
    pub instance_id: Option<i64>,
    pub source_type: String,
    pub source_id: Option<String>,
    /// ACTIVE, ACKNOWLEDGED or RESOLVED.
    pub status: AlertStatus,
    pub acknowledged_by: Option<i64>,
    pub acknowledged_at: Option<DateTime<Utc>>,
    pub acknowledged_comment: Option<String>,
    /// Empty when it resolved by itself.
    pub resolved_by: Option<i64>,
    pub resolved_at: Option<DateTime<Utc>>,
    pub resolved_comment: Option<String>,
    /// Whether the latest change (raised or resolved) reached every channel.
    pub notification_sent: bool,
    pub notification_attempts: i32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

pub fn view(m: alert_records::Model) -> AlertView {
    AlertView {
        id: m.id,
        alert_uuid: m.alert_uuid,
        rule_id: m.rule_id,
        rule_name: m.rule_name,
        dedupe_key: m.dedupe_key,
        level: m.alert_level,
        title: m.alert_title,
        message: m.alert_message,
        metric_name: m.metric_name,
        metric_value: m.metric_value,
        threshold_value: m.threshold_value,
        instance_id: m.instance_id,
        source_type: m.source_type,
        source_id: m.source_id,
        status: m.status,
        acknowledged_by: m.acknowledged_by,
        acknowledged_at: m.acknowledged_at.map(to_utc),
        acknowledged_comment: m.acknowledged_comment,
        resolved_by: m.resolved_by,
        resolved_at: m.resolved_at.map(to_utc),
        resolved_comment: m.resolved_comment,
        notification_sent: m.notification_sent,
        notification_attempts: m.notification_attempts,
        created_at: to_utc(m.created_at),
        updated_at: to_utc(m.updated_at),
    }
}

#[derive(Debug, Clone, Default)]
pub struct AlertFilter {
    pub status: Option<String>,
    pub rule_id: Option<i64>,
    pub instance_id: Option<i64>,
}

pub async fn list(
    ctx: &Context,
    actor: &Actor,
    filter: AlertFilter,
    page: PageRequest,
) -> ServiceResult<Page<AlertView>> {
    actor.require(perm::AlertsRead)?;
    let mut query = alert_records::Entity::find();
    if let Some(status) = filter.status {
        let Some(status) = AlertStatus::parse(&status.to_ascii_uppercase()) else {
            return Err(ServiceError::invalid(
                "status",
                format!("must be one of {}", AlertStatus::list()),
            ));
        };
        query = query.filter(alert_records::Column::Status.eq(status));
    }
    if let Some(id) = filter.rule_id {
        query = query.filter(alert_records::Column::RuleId.eq(id));
    }
    if let Some(id) = filter.instance_id {
        query = query.filter(alert_records::Column::InstanceId.eq(id));
    }
    if let Some(before) = page.before {
        query = query.filter(alert_records::Column::Id.lt(before));
    }
    let rows = query
        .order_by_desc(alert_records::Column::Id)
        .limit(page.fetch())
        .all(&ctx.db)
        .await?;
    Ok(Page::from_rows(page, rows, |r| r.id, view))
}

pub async fn get(ctx: &Context, actor: &Actor, id: i64) -> ServiceResult<AlertView> {
    actor.require(perm::AlertsRead)?;
    Ok(view(find(&ctx.db, id).await?))
}

async fn find<C: sea_orm::ConnectionTrait>(
    conn: &C,
    id: i64,
) -> ServiceResult<alert_records::Model> {
    alert_records::Entity::find_by_id(id)
        .one(conn)
        .await?
        .ok_or(ServiceError::NotFound("alert"))
}

fn check_comment(comment: Option<&str>) -> ServiceResult<()> {
    if comment.is_some_and(|c| c.chars().count() > 1000) {
        return Err(ServiceError::invalid(
            "comment",
            "must be at most 1000 characters",
        ));
    }
    Ok(())
}

/// ACTIVE → ACKNOWLEDGED: someone is on it. The alert stays open until the condition clears.
pub async fn acknowledge(
    ctx: &Context,
    actor: &Actor,
    id: i64,
    comment: Option<String>,
) -> ServiceResult<AlertView> {
    let entry = AuditEntry::new("alert.acknowledge", OperationType::Update, "alert").target(id);
    audit::guard(ctx, actor, entry.clone(), async {
        actor.require(perm::AlertsAck)?;
        check_comment(comment.as_deref())?;
        transition(
            ctx,
            actor,
            &entry,
            id,
            |s| s == AlertStatus::Active,
            |row, now| {
                row.status = Set(AlertStatus::Acknowledged);
                row.acknowledged_by = Set(actor.user_id);
                row.acknowledged_at = Set(Some(now));
                row.acknowledged_comment = Set(comment.clone());
            },
        )
        .await
    })
    .await
}

/// Closes an open alert by hand (e.g. a condition the evaluator cannot see clearing).
pub async fn resolve(
    ctx: &Context,
    actor: &Actor,
    id: i64,
    comment: Option<String>,
) -> ServiceResult<AlertView> {
    let entry = AuditEntry::new("alert.resolve", OperationType::Update, "alert").target(id);
    audit::guard(ctx, actor, entry.clone(), async {
        actor.require(perm::AlertsAck)?;
        check_comment(comment.as_deref())?;
        transition(ctx, actor, &entry, id, AlertStatus::is_open, |row, now| {
            row.status = Set(AlertStatus::Resolved);
            row.resolution_token = Set(id);
            row.resolved_by = Set(actor.user_id);
            row.resolved_at = Set(Some(now));
            row.resolved_comment = Set(comment.clone());
            row.notification_sent = Set(false);
            row.notification_attempts = Set(0);
        })
        .await
    })
    .await
}

/// Applies `change` to an alert whose state `from` accepts, audited.
async fn transition(
    ctx: &Context,
    actor: &Actor,
    entry: &AuditEntry,
    id: i64,
    from: fn(AlertStatus) -> bool,
    change: impl Fn(&mut alert_records::ActiveModel, chrono::NaiveDateTime),
) -> ServiceResult<AlertView> {
    let now = ctx.clock.now_db();
    let txn = crate::db::begin(&ctx.db).await?;
    // Write first, so the evaluator resolving this alert meanwhile cannot fail our write.
    alert_records::Entity::update_many()
        .col_expr(
            alert_records::Column::UpdatedAt,
            Expr::col(alert_records::Column::UpdatedAt),
        )
        .filter(alert_records::Column::Id.eq(id))
        .exec(&txn)
        .await?;
    let current = find(&txn, id).await?;
    if !from(current.status) {
        return Err(ServiceError::conflict(
            "status",
            format!("the alert is {}", current.status),
        ));
    }
    let before = view(current.clone());
    let mut row: alert_records::ActiveModel = current.into();
    change(&mut row, now);
    row.updated_at = Set(now);
    alert_records::Entity::update(row).exec(&txn).await?;
    let after = view(find(&txn, id).await?);
    audit::commit_updated(
        txn,
        actor,
        entry,
        id,
        after.title.clone(),
        &before,
        after,
        now,
    )
    .await
}

/// Resolves open alerts of `keys` by themselves (the condition cleared).
pub(crate) async fn auto_resolve(ctx: &Context, ids: &[i64]) -> ServiceResult<u64> {
    if ids.is_empty() {
        return Ok(0);
    }
    let now = ctx.clock.now_db();
    Ok(alert_records::Entity::update_many()
        .col_expr(
            alert_records::Column::Status,
            Expr::value(AlertStatus::Resolved),
        )
        .col_expr(
            alert_records::Column::ResolutionToken,
            Expr::col(alert_records::Column::Id),
        )
        .col_expr(alert_records::Column::ResolvedAt, Expr::value(now))
        .col_expr(
            alert_records::Column::ResolvedComment,
            Expr::value("the condition cleared"),
        )
        .col_expr(alert_records::Column::NotificationSent, Expr::value(false))
        .col_expr(alert_records::Column::NotificationAttempts, Expr::value(0))
        .col_expr(alert_records::Column::UpdatedAt, Expr::value(now))
        .filter(alert_records::Column::Id.is_in(ids.iter().copied()))
        .filter(alert_records::Column::ResolutionToken.eq(0))
        .exec(&ctx.db)
        .await?
        .rows_affected)
}
