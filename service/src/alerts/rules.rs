//! Alert rules: what to watch, how bad it is, where to tell. Channel URLs and webhook secrets
//! are sealed at rest and never shown again (a robot URL carries its key).

use crate::rbac::perm;
use chrono::{DateTime, Utc};
use entity::alert_rules;
use entity::states::{AlertChannelKind, AlertLevel, AlertRuleType};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter,
    QueryOrder, QuerySelect,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{
    Context, ServiceError, ServiceResult,
    audit::{self, AuditEntry, OperationType},
    auth::actor::Actor,
    clock::to_utc,
    pagination::{Page, PageRequest},
    validate::{self, Violations},
};

pub const METRICS: &[&str] = &["heartbeat_latency_ms"];
pub const COMPARATORS: &[&str] = &[">", ">=", "<", "<="];

#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChannelInput {
    /// Read as text and checked with the other fields, so one answer lists every mistake.
    #[schema(value_type = AlertChannelKind)]
    pub kind: String,
    pub url: String,
    /// HMAC-SHA256 key of a `webhook` channel.
    pub secret: Option<String>,
}

/// A channel as shown: the URL reduced to scheme and host, the secret only as present or not.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct ChannelView {
    pub kind: AlertChannelKind,
    pub target: String,
    pub has_secret: bool,
}

/// A channel as stored in `alert_rules.channels`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SealedChannel {
    pub kind: AlertChannelKind,
    pub target: String,
    pub url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RuleInput {
    pub name: String,
    pub description: Option<String>,
    pub rule_type: AlertRuleType,
    /// metric_threshold: the metric (heartbeat_latency_ms).
    pub metric_name: Option<String>,
    /// metric_threshold: >, >=, < or <=.
    pub comparator: Option<String>,
    /// heartbeat_missing: missed heartbeats (default `instances.offline_after_missed`);
    /// metric_threshold: the value; task_failure_rate: a share between 0 and 1; desk_queue_wait: seconds a queued conversation may wait (1 to 86400).
    pub threshold: Option<f64>,
    /// Window the condition is judged over, 60–86400 s (default 300).
    pub window_seconds: Option<i32>,
    /// Only this instance (default: every instance).
    pub instance_id: Option<i64>,
    /// Default WARNING.
    pub level: Option<AlertLevel>,
    pub enabled: Option<bool>,
    #[serde(default)]
    pub channels: Vec<ChannelInput>,
    /// After an alert resolves, the same condition raises no new alert for this long (default 300).
    pub cooldown_seconds: Option<i32>,
}

#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RulePatch {
    pub name: Option<String>,
    pub description: Option<Option<String>>,
    pub comparator: Option<String>,
    pub threshold: Option<f64>,
    pub window_seconds: Option<i32>,
    pub level: Option<AlertLevel>,
    pub enabled: Option<bool>,
    /// Replaces every channel.
    pub channels: Option<Vec<ChannelInput>>,
    pub cooldown_seconds: Option<i32>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct RuleView {
    pub id: i64,
    pub rule_uuid: uuid::Uuid,
    pub name: String,
    pub description: Option<String>,
    pub rule_type: AlertRuleType,
    pub metric_name: Option<String>,
    pub comparator: Option<String>,
    pub threshold: Option<f64>,
    pub window_seconds: i32,
    pub instance_id: Option<i64>,
    pub level: AlertLevel,
    pub enabled: bool,
    pub channels: Vec<ChannelView>,
    pub cooldown_seconds: i32,
    pub last_evaluated_at: Option<DateTime<Utc>>,
    pub created_by: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// The rule's notification channels; a stored value that does not fit is an error naming the
/// rule, so a corrupt column never quietly stops notifications.
pub fn stored_channels(rule: &alert_rules::Model) -> Result<Vec<SealedChannel>, String> {
    crate::serde_util::stored(rule.channels.as_ref(), "channels")
        .map(Option::unwrap_or_default)
        .map_err(|e| format!("alert rule {}: {e}", rule.id))
}

pub fn view(rule: alert_rules::Model) -> RuleView {
    let channels = stored_channels(&rule)
        .unwrap_or_else(|e| {
            tracing::error!(rule.id = rule.id, error = %e, "alert rule channels unreadable");
            Vec::new()
        })
        .into_iter()
        .map(|c| ChannelView {
            kind: c.kind,
            target: c.target,
            has_secret: c.secret.is_some(),
        })
        .collect();
    RuleView {
        id: rule.id,
        rule_uuid: rule.rule_uuid,
        name: rule.name,
        description: rule.description,
        rule_type: rule.rule_type,
        metric_name: rule.metric_name,
        comparator: rule.comparator,
        threshold: rule.threshold,
        window_seconds: rule.window_seconds,
        instance_id: rule.instance_id,
        level: rule.level,
        enabled: rule.enabled,
        channels,
        cooldown_seconds: rule.cooldown_seconds,
        last_evaluated_at: rule.last_evaluated_at.map(to_utc),
        created_by: rule.created_by,
        created_at: to_utc(rule.created_at),
        updated_at: to_utc(rule.updated_at),
    }
}

async fn check_channels(
    ctx: &Context,
    v: &mut Violations,
    channels: &[ChannelInput],
) -> Vec<SealedChannel> {
    if channels.len() > 10 {
        v.add("channels", "at most 10 channels");
    }
    let mut sealed = Vec::new();
    for (i, channel) in channels.iter().enumerate() {
        let Some(kind) = AlertChannelKind::parse(&channel.kind) else {
            v.add(
                format!("channels[{i}].kind"),
                format!("must be one of {}", AlertChannelKind::list()),
            );
            continue;
        };
        if channel.secret.as_deref().is_some_and(|s| s.len() > 200) {
            v.add(
                format!("channels[{i}].secret"),
                "must be at most 200 characters",
            );
        }
        match ctx.outbound.policy.check_url(&channel.url).await {
            Ok(url) => sealed.push(SealedChannel {
                kind,
                target: format!("{}://{}", url.scheme(), url.host_str().unwrap_or_default()),
                url: ctx.sealer.seal(url.as_str()),
                secret: channel
                    .secret
                    .as_deref()
                    .filter(|s| !s.is_empty())
                    .map(|s| ctx.sealer.seal(s)),
            }),
            Err(refused) => v.add(format!("channels[{i}].url"), refused.0),
        }
    }
    sealed
}

/// The parameters a rule type needs, checked together.
fn check_condition(
    v: &mut Violations,
    rule_type: AlertRuleType,
    metric_name: Option<&str>,
    comparator: Option<&str>,
    threshold: Option<f64>,
) {
    if threshold.is_some_and(|t| !t.is_finite()) {
        v.add("threshold", "must be a number");
    }
    match rule_type {
        AlertRuleType::MetricThreshold => {
            if !metric_name.is_some_and(|m| METRICS.contains(&m)) {
                v.add(
                    "metric_name",
                    format!("must be one of {}", METRICS.join(", ")),
                );
            }
            if !comparator.is_some_and(|c| COMPARATORS.contains(&c)) {
                v.add("comparator", "must be >, >=, < or <=");
            }
            if threshold.is_none() {
                v.add("threshold", "is required for metric_threshold");
            }
        }
        AlertRuleType::TaskFailureRate if !threshold.is_some_and(|t| (0.0..=1.0).contains(&t)) => {
            v.add("threshold", "must be a share between 0 and 1");
        }
        AlertRuleType::DeskQueueWait
            if !threshold.is_some_and(|t| (1.0..=86_400.0).contains(&t)) =>
        {
            v.add(
                "threshold",
                "must be between 1 and 86400 seconds of waiting",
            );
        }
        AlertRuleType::HeartbeatMissing
            if threshold.is_some_and(|t| !(1.0..=1000.0).contains(&t)) =>
        {
            v.add("threshold", "must be between 1 and 1000 missed heartbeats");
        }
        _ => {}
    }
}

fn check_common(v: &mut Violations, window: Option<i32>, cooldown: Option<i32>) {
    if window.is_some_and(|w| !(60..=86_400).contains(&w)) {
        v.add("window_seconds", "must be between 60 and 86400");
    }
    if cooldown.is_some_and(|c| !(0..=86_400).contains(&c)) {
        v.add("cooldown_seconds", "must be between 0 and 86400");
    }
}

async fn name_taken<C: ConnectionTrait>(
    conn: &C,
    name: &str,
    except: Option<i64>,
) -> ServiceResult<bool> {
    let mut q = alert_rules::Entity::find()
        .filter(alert_rules::Column::Name.eq(name))
        .filter(alert_rules::Column::DeletedAt.is_null());
    if let Some(id) = except {
        q = q.filter(alert_rules::Column::Id.ne(id));
    }
    Ok(q.count(conn).await? > 0)
}

/// Writes first in a transaction that reads then writes the rule: the write lock (SQLite) or
/// row lock is taken before the read, so a concurrent evaluator cannot make the later write fail.
async fn lock<C: ConnectionTrait>(conn: &C, id: i64) -> ServiceResult<()> {
    alert_rules::Entity::update_many()
        .col_expr(
            alert_rules::Column::UpdatedAt,
            sea_orm::sea_query::Expr::col(alert_rules::Column::UpdatedAt),
        )
        .filter(alert_rules::Column::Id.eq(id))
        .exec(conn)
        .await?;
    Ok(())
}

pub async fn find<C: ConnectionTrait>(conn: &C, id: i64) -> ServiceResult<alert_rules::Model> {
    alert_rules::Entity::find_by_id(id)
        .filter(alert_rules::Column::DeletedAt.is_null())
        .one(conn)
        .await?
        .ok_or(ServiceError::NotFound("alert rule"))
}

pub async fn get(ctx: &Context, actor: &Actor, id: i64) -> ServiceResult<RuleView> {
    actor.require(perm::AlertRulesRead)?;
    Ok(view(find(&ctx.db, id).await?))
}

pub async fn list(
    ctx: &Context,
    actor: &Actor,
    page: PageRequest,
) -> ServiceResult<Page<RuleView>> {
    actor.require(perm::AlertRulesRead)?;
    let mut query = alert_rules::Entity::find().filter(alert_rules::Column::DeletedAt.is_null());
    if let Some(before) = page.before {
        query = query.filter(alert_rules::Column::Id.lt(before));
    }
    let rows = query
        .order_by_desc(alert_rules::Column::Id)
        .limit(page.fetch())
        .all(&ctx.db)
        .await?;
    Ok(Page::from_rows(page, rows, |r| r.id, view))
}

pub async fn create(ctx: &Context, actor: &Actor, input: RuleInput) -> ServiceResult<RuleView> {
    let entry = AuditEntry::new("alert_rule.create", OperationType::Create, "alert_rule");
    audit::guard(ctx, actor, entry.clone(), async {
        actor.require(perm::AlertRulesCreate)?;
        let mut v = Violations::new();
        let name = v.take(validate::text("name", &input.name, 1, 100));
        let description = v
            .take(validate::optional_text(
                "description",
                input.description.as_deref(),
                1000,
            ))
            .flatten();
        check_condition(
            &mut v,
            input.rule_type,
            input.metric_name.as_deref(),
            input.comparator.as_deref(),
            input.threshold,
        );
        check_common(&mut v, input.window_seconds, input.cooldown_seconds);
        let channels = check_channels(ctx, &mut v, &input.channels).await;
        v.finish()?;
        let Some(name) = name else {
            return Err(ServiceError::invalid("name", "is invalid"));
        };
        let now = ctx.clock.now_db();
        let txn = crate::db::begin(&ctx.db).await?;
        if name_taken(&txn, &name, None).await? {
            return Err(ServiceError::conflict(
                "name",
                "an alert rule with this name exists",
            ));
        }
        let metric = (input.rule_type == AlertRuleType::MetricThreshold)
            .then_some(input.metric_name)
            .flatten();
        let comparator = (input.rule_type == AlertRuleType::MetricThreshold)
            .then_some(input.comparator)
            .flatten();
        let row = alert_rules::ActiveModel {
            rule_uuid: Set(uuid::Uuid::now_v7()),
            name: Set(name),
            description: Set(description),
            rule_type: Set(input.rule_type),
            metric_name: Set(metric),
            comparator: Set(comparator),
            threshold: Set(input.threshold),
            window_seconds: Set(input.window_seconds.unwrap_or(300)),
            instance_id: Set(input.instance_id),
            level: Set(input.level.unwrap_or(AlertLevel::Warning)),
            enabled: Set(input.enabled.unwrap_or(true)),
            channels: Set(Some(serde_json::to_value(&channels).unwrap_or(Value::Null))),
            cooldown_seconds: Set(input.cooldown_seconds.unwrap_or(300)),
            created_by: Set(actor.user_id.unwrap_or(0)),
            deletion_token: Set(0),
            created_at: Set(now),
            updated_at: Set(now),
            ..Default::default()
        };
        let id = alert_rules::Entity::insert(row)
            .exec(&txn)
            .await?
            .last_insert_id;
        let created = view(find(&txn, id).await?);
        audit::commit_created(txn, actor, &entry, id, created.name.clone(), created, now).await
    })
    .await
}

pub async fn update(
    ctx: &Context,
    actor: &Actor,
    id: i64,
    patch: RulePatch,
) -> ServiceResult<RuleView> {
    let entry =
        AuditEntry::new("alert_rule.update", OperationType::Update, "alert_rule").target(id);
    audit::guard(ctx, actor, entry.clone(), async {
        actor.require(perm::AlertRulesUpdate)?;
        let current = find(&ctx.db, id).await?;
        let mut v = Violations::new();
        let name = patch
            .name
            .as_deref()
            .and_then(|n| v.take(validate::text("name", n, 1, 100)));
        let description = patch.description.as_ref().map(|d| {
            v.take(validate::optional_text("description", d.as_deref(), 1000))
                .flatten()
        });
        check_condition(
            &mut v,
            current.rule_type,
            current.metric_name.as_deref(),
            patch
                .comparator
                .as_deref()
                .or(current.comparator.as_deref()),
            patch.threshold.or(current.threshold),
        );
        check_common(&mut v, patch.window_seconds, patch.cooldown_seconds);
        let channels = match &patch.channels {
            Some(channels) => Some(check_channels(ctx, &mut v, channels).await),
            None => None,
        };
        v.finish()?;
        let now = ctx.clock.now_db();
        let txn = crate::db::begin(&ctx.db).await?;
        lock(&txn, id).await?;
        let current = find(&txn, id).await?;
        if let Some(name) = &name
            && name_taken(&txn, name, Some(id)).await?
        {
            return Err(ServiceError::conflict(
                "name",
                "an alert rule with this name exists",
            ));
        }
        let before = view(current.clone());
        let mut row: alert_rules::ActiveModel = current.into();
        if let Some(name) = name {
            row.name = Set(name);
        }
        if let Some(description) = description {
            row.description = Set(description);
        }
        if let Some(c) = patch
            .comparator
            .filter(|_| before.rule_type == AlertRuleType::MetricThreshold)
        {
            row.comparator = Set(Some(c));
        }
        if let Some(t) = patch.threshold {
            row.threshold = Set(Some(t));
        }
        if let Some(w) = patch.window_seconds {
            row.window_seconds = Set(w);
        }
        if let Some(l) = patch.level {
            row.level = Set(l);
        }
        if let Some(e) = patch.enabled {
            row.enabled = Set(e);
        }
        if let Some(channels) = channels {
            row.channels = Set(Some(serde_json::to_value(&channels).unwrap_or(Value::Null)));
        }
        if let Some(c) = patch.cooldown_seconds {
            row.cooldown_seconds = Set(c);
        }
        row.updated_at = Set(now);
        alert_rules::Entity::update(row).exec(&txn).await?;
        let after = view(find(&txn, id).await?);
        audit::commit_updated(
            txn,
            actor,
            &entry,
            id,
            after.name.clone(),
            &before,
            after,
            now,
        )
        .await
    })
    .await
}

/// Soft delete: open alerts of the rule stay until resolved by hand.
pub async fn delete(ctx: &Context, actor: &Actor, id: i64) -> ServiceResult<()> {
    let entry =
        AuditEntry::new("alert_rule.delete", OperationType::Delete, "alert_rule").target(id);
    audit::guard(ctx, actor, entry.clone(), async {
        actor.require(perm::AlertRulesDelete)?;
        let now = ctx.clock.now_db();
        let txn = crate::db::begin(&ctx.db).await?;
        lock(&txn, id).await?;
        let before = view(find(&txn, id).await?);
        alert_rules::Entity::update(alert_rules::ActiveModel {
            id: Set(id),
            deleted_at: Set(Some(now)),
            deletion_token: Set(id),
            enabled: Set(false),
            updated_at: Set(now),
            ..Default::default()
        })
        .exec(&txn)
        .await?;
        audit::commit_deleted(txn, actor, &entry, id, before.name.clone(), &before, now).await
    })
    .await
}
