//! One evaluation pass: every enabled rule says which subjects (instances, tasks) are firing;
//! a firing subject without an open alert raises one (unless its last alert resolved within the
//! rule's cool-down), an open alert whose subject stopped firing resolves itself. The unique
//! (dedupe_key, resolution_token) index keeps one open alert per subject however many workers
//! evaluate at once.

use entity::states::{AlertRuleType, AlertStatus, InstanceStatus};
use std::collections::{BTreeMap, HashMap};

use chrono::TimeDelta;
use entity::{alert_records, alert_rules, instance_monitors, message_task_runs, wework_instances};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter, QuerySelect, sea_query::Expr,
};

use crate::{Context, ServiceResult};

/// What a firing subject's alert says.
#[derive(Debug, Clone)]
pub struct Firing {
    pub title: String,
    pub message: String,
    pub value: Option<f64>,
    pub instance_id: Option<i64>,
    pub source_type: &'static str,
    pub source_id: String,
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Evaluated {
    pub rules: usize,
    pub raised: usize,
    pub resolved: u64,
}

pub async fn run(ctx: &Context) -> ServiceResult<Evaluated> {
    let rules = alert_rules::Entity::find()
        .filter(alert_rules::Column::Enabled.eq(true))
        .filter(alert_rules::Column::DeletedAt.is_null())
        .all(&ctx.db)
        .await?;
    let mut result = Evaluated {
        rules: rules.len(),
        ..Evaluated::default()
    };
    for rule in rules {
        let firing = firing(ctx, &rule).await?;
        let (raised, resolved) = apply(ctx, &rule, firing).await?;
        result.raised += raised;
        result.resolved += resolved;
        alert_rules::Entity::update_many()
            .col_expr(
                alert_rules::Column::LastEvaluatedAt,
                Expr::value(ctx.clock.now_db()),
            )
            .filter(alert_rules::Column::Id.eq(rule.id))
            .exec(&ctx.db)
            .await?;
    }
    Ok(result)
}

/// Firing subjects of one rule, by dedupe key.
async fn firing(
    ctx: &Context,
    rule: &alert_rules::Model,
) -> ServiceResult<BTreeMap<String, Firing>> {
    let now = ctx.clock.now_db();
    let since = now - TimeDelta::seconds(i64::from(rule.window_seconds));
    let mut out = BTreeMap::new();
    let key = |what: &str, id: i64| format!("rule:{}:{what}:{id}", rule.id);
    match rule.rule_type {
        AlertRuleType::HeartbeatMissing | AlertRuleType::InstanceError => {
            let mut q = wework_instances::Entity::find()
                .filter(wework_instances::Column::Enabled.eq(true))
                .filter(wework_instances::Column::DeletedAt.is_null());
            if let Some(id) = rule.instance_id {
                q = q.filter(wework_instances::Column::Id.eq(id));
            }
            let missed_limit = rule
                .threshold
                .map_or(ctx.settings.instances.offline_after_missed, |t| {
                    t.round() as i32
                });
            for instance in q.all(&ctx.db).await? {
                let (fires, title, message, value) = if rule.rule_type
                    == AlertRuleType::InstanceError
                {
                    (
                        instance.status == InstanceStatus::Error,
                        format!("Instance {} is in error", instance.name),
                        instance.error_message.clone().unwrap_or_default(),
                        None,
                    )
                } else {
                    (
                        instance.missed_heartbeats >= missed_limit
                            && instance.status != InstanceStatus::Maintenance,
                        format!("Instance {} missed its heartbeats", instance.name),
                        format!(
                            "{} heartbeats missed in a row (limit {missed_limit}); last error: {}",
                            instance.missed_heartbeats,
                            instance.error_message.clone().unwrap_or_default()
                        ),
                        Some(f64::from(instance.missed_heartbeats)),
                    )
                };
                if fires {
                    out.insert(
                        key("instance", instance.id),
                        Firing {
                            title,
                            message,
                            value,
                            instance_id: Some(instance.id),
                            source_type: "instance",
                            source_id: instance.id.to_string(),
                        },
                    );
                }
            }
        }
        AlertRuleType::MetricThreshold => {
            let mut q = instance_monitors::Entity::find()
                .select_only()
                .column(instance_monitors::Column::InstanceId)
                .column(instance_monitors::Column::MetricValue)
                .filter(
                    instance_monitors::Column::MetricName
                        .eq(rule.metric_name.clone().unwrap_or_default()),
                )
                .filter(instance_monitors::Column::BucketSeconds.eq(0))
                .filter(instance_monitors::Column::CollectedAt.gte(since));
            if let Some(id) = rule.instance_id {
                q = q.filter(instance_monitors::Column::InstanceId.eq(id));
            }
            let mut sums: HashMap<i64, (f64, u32)> = HashMap::new();
            for (instance, value) in q.into_tuple::<(i64, f64)>().all(&ctx.db).await? {
                let entry = sums.entry(instance).or_default();
                entry.0 += value;
                entry.1 += 1;
            }
            let threshold = rule.threshold.unwrap_or_default();
            let comparator = rule.comparator.clone().unwrap_or_else(|| ">".into());
            for (instance, (sum, n)) in sums {
                let average = sum / f64::from(n.max(1));
                if compare(average, &comparator, threshold) {
                    let metric = rule.metric_name.clone().unwrap_or_default();
                    out.insert(
                        key("instance", instance),
                        Firing {
                            title: format!(
                                "{metric} {comparator} {threshold} on instance {instance}"
                            ),
                            message: format!(
                                "average {average:.1} over the last {} s ({n} samples)",
                                rule.window_seconds
                            ),
                            value: Some(average),
                            instance_id: Some(instance),
                            source_type: "instance",
                            source_id: instance.to_string(),
                        },
                    );
                }
            }
        }
        AlertRuleType::TaskFailureRate => {
            let runs = message_task_runs::Entity::find()
                .filter(message_task_runs::Column::LastActivityAt.gte(since))
                .all(&ctx.db)
                .await?;
            let mut per_task: HashMap<i64, (i64, i64)> = HashMap::new();
            for run in runs {
                let entry = per_task.entry(run.task_id).or_default();
                entry.0 += i64::from(run.fail_count);
                entry.1 += i64::from(run.success_count + run.fail_count);
            }
            let threshold = rule.threshold.unwrap_or(0.5);
            for (task, (failed, done)) in per_task {
                // Too few sends say nothing about a rate.
                if done < 20 {
                    continue;
                }
                let rate = failed as f64 / done as f64;
                if rate > threshold {
                    out.insert(
                        key("task", task),
                        Firing {
                            title: format!("Task {task} fails {:.0}% of its sends", rate * 100.0),
                            message: format!(
                                "{failed} of {done} sends failed (limit {:.0}%)",
                                threshold * 100.0
                            ),
                            value: Some(rate),
                            instance_id: None,
                            source_type: "task",
                            source_id: task.to_string(),
                        },
                    );
                }
            }
        }
        AlertRuleType::DeskQueueWait => {
            let threshold = rule.threshold.unwrap_or(300.0);
            let now = ctx.clock.now_db();
            for (group, name, oldest) in crate::desk::conversations::oldest_queued(ctx).await? {
                let waited = (now - oldest).num_seconds() as f64;
                if waited > threshold {
                    out.insert(
                        key("skill_group", group),
                        Firing {
                            title: format!("Visitors of skill group {name} wait more than {threshold:.0} s"),
                            message: format!(
                                "the oldest queued conversation has waited {waited:.0} s (limit {threshold:.0} s)"
                            ),
                            value: Some(waited),
                            instance_id: None,
                            source_type: "skill_group",
                            source_id: group.to_string(),
                        },
                    );
                }
            }
        }
    }
    Ok(out)
}

fn compare(value: f64, comparator: &str, threshold: f64) -> bool {
    match comparator {
        ">=" => value >= threshold,
        "<" => value < threshold,
        "<=" => value <= threshold,
        _ => value > threshold,
    }
}

/// Raises alerts for new firing subjects and resolves the ones that cleared.
async fn apply(
    ctx: &Context,
    rule: &alert_rules::Model,
    firing: BTreeMap<String, Firing>,
) -> ServiceResult<(usize, u64)> {
    let now = ctx.clock.now_db();
    let open: Vec<(i64, String)> = alert_records::Entity::find()
        .select_only()
        .columns([alert_records::Column::Id, alert_records::Column::DedupeKey])
        .filter(alert_records::Column::RuleId.eq(rule.id))
        .filter(alert_records::Column::ResolutionToken.eq(0))
        .into_tuple()
        .all(&ctx.db)
        .await?;
    let cleared: Vec<i64> = open
        .iter()
        .filter(|(_, key)| !firing.contains_key(key))
        .map(|(id, _)| *id)
        .collect();
    let resolved = super::auto_resolve(ctx, &cleared).await?;
    let mut raised = 0;
    let cooldown_since = now - TimeDelta::seconds(i64::from(rule.cooldown_seconds));
    for (key, firing) in firing {
        if open.iter().any(|(_, k)| *k == key) {
            continue;
        }
        let cooling = alert_records::Entity::find()
            .select_only()
            .column(alert_records::Column::Id)
            .filter(alert_records::Column::DedupeKey.eq(key.as_str()))
            .filter(alert_records::Column::ResolvedAt.gte(cooldown_since))
            .into_tuple::<i64>()
            .one(&ctx.db)
            .await?
            .is_some();
        if cooling {
            continue;
        }
        let row = alert_records::ActiveModel {
            alert_uuid: Set(uuid::Uuid::now_v7()),
            rule_id: Set(Some(rule.id)),
            rule_name: Set(rule.name.clone()),
            dedupe_key: Set(key),
            resolution_token: Set(0),
            alert_level: Set(rule.level),
            alert_title: Set(firing.title.chars().take(200).collect()),
            alert_message: Set(firing.message),
            metric_name: Set(rule.metric_name.clone()),
            metric_value: Set(firing.value),
            threshold_value: Set(rule.threshold),
            instance_id: Set(firing.instance_id),
            source_type: Set(firing.source_type.to_owned()),
            source_id: Set(Some(firing.source_id)),
            status: Set(AlertStatus::Active),
            notification_sent: Set(false),
            notification_attempts: Set(0),
            created_at: Set(now),
            updated_at: Set(now),
            ..Default::default()
        };
        // Another worker raising the same alert first is not an error: its row is the one.
        let inserted = alert_records::Entity::insert(row)
            .on_conflict(
                sea_orm::sea_query::OnConflict::columns([
                    alert_records::Column::DedupeKey,
                    alert_records::Column::ResolutionToken,
                ])
                .update_column(alert_records::Column::DedupeKey)
                .to_owned(),
            )
            .exec_without_returning(&ctx.db)
            .await?;
        if inserted > 0 {
            raised += 1;
            tracing::warn!(target: "wework::event", rule_id = rule.id, "alert raised: {}", rule.name);
        }
    }
    Ok((raised, resolved))
}
