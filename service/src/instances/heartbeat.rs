//! Heartbeats: each enabled instance is polled at its own interval. A due instance is claimed with
//! a conditional UPDATE (so several workers never poll it twice) and checked in its own task with
//! a timeout, so one slow instance never delays the others.

use entity::states::InstanceStatus;
use std::time::{Duration, Instant};

use chrono::TimeDelta;
use entity::{instance_monitors, wework_instances};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, Condition, EntityTrait, QueryFilter, QuerySelect,
    sea_query::Expr,
};

use crate::{Context, ServiceResult, drivers::DriverError};

/// Instances whose next heartbeat is due, at most `limit`.
pub async fn due(ctx: &Context, limit: u64) -> ServiceResult<Vec<wework_instances::Model>> {
    let now = ctx.clock.now_db();
    Ok(wework_instances::Entity::find()
        .filter(wework_instances::Column::Enabled.eq(true))
        .filter(wework_instances::Column::DeletedAt.is_null())
        .filter(wework_instances::Column::Status.ne(InstanceStatus::Maintenance))
        .filter(
            Condition::any()
                .add(wework_instances::Column::NextHeartbeatAt.is_null())
                .add(wework_instances::Column::NextHeartbeatAt.lte(now)),
        )
        .limit(limit)
        .all(&ctx.db)
        .await?)
}

/// Moves the instance's next heartbeat forward; `false` when another worker already did.
pub async fn claim(ctx: &Context, instance: &wework_instances::Model) -> ServiceResult<bool> {
    let now = ctx.clock.now_db();
    let next = now + TimeDelta::seconds(i64::from(instance.heartbeat_interval.max(1)));
    let condition = match instance.next_heartbeat_at {
        Some(at) => wework_instances::Column::NextHeartbeatAt.eq(at),
        None => wework_instances::Column::NextHeartbeatAt.is_null(),
    };
    let claimed = wework_instances::Entity::update_many()
        .col_expr(wework_instances::Column::NextHeartbeatAt, Expr::value(next))
        .filter(wework_instances::Column::Id.eq(instance.id))
        .filter(condition)
        .exec(&ctx.db)
        .await?;
    Ok(claimed.rows_affected == 1)
}

/// Claims every due instance and checks each in its own task. Returns how many were started.
pub async fn tick(ctx: &Context) -> ServiceResult<usize> {
    let mut started = 0;
    for instance in due(ctx, 500).await? {
        if claim(ctx, &instance).await? {
            let ctx = ctx.clone();
            tokio::spawn(async move {
                if let Err(e) = beat(&ctx, &instance).await {
                    tracing::warn!(instance.id = instance.id, error = %e, "recording a heartbeat failed");
                }
            });
            started += 1;
        }
    }
    Ok(started)
}

/// What one heartbeat found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Beat {
    Online { latency_ms: i32 },
    Failed { error: String, permanent: bool },
}

/// Checks one instance now and records the outcome.
pub async fn beat(ctx: &Context, instance: &wework_instances::Model) -> ServiceResult<Beat> {
    let timeout = Duration::from_secs(ctx.settings.instances.heartbeat_timeout_secs);
    let started = Instant::now();
    let outcome = match crate::drivers::for_instance(ctx, instance).await {
        Err(e) => Err(DriverError::Permanent {
            code: "config".into(),
            message: e.to_string(),
        }),
        Ok(driver) => match tokio::time::timeout(timeout, driver.health()).await {
            Ok(result) => result,
            Err(_) => Err(DriverError::Transient {
                code: "timeout".into(),
                message: format!("no answer within {} s", timeout.as_secs()),
                retry_after: None,
            }),
        },
    };
    let latency_ms = i32::try_from(started.elapsed().as_millis()).unwrap_or(i32::MAX);
    let now = ctx.clock.now_db();
    let not_maintenance = wework_instances::Column::Status.ne(InstanceStatus::Maintenance);
    match outcome {
        Ok(health) => {
            let recovered =
                instance.status != InstanceStatus::Online && instance.last_heartbeat.is_some();
            let mut update = wework_instances::Entity::update_many()
                .col_expr(
                    wework_instances::Column::Status,
                    Expr::value(InstanceStatus::Online),
                )
                .col_expr(wework_instances::Column::LastHeartbeat, Expr::value(now))
                .col_expr(
                    wework_instances::Column::HeartbeatLatencyMs,
                    Expr::value(latency_ms),
                )
                .col_expr(wework_instances::Column::MissedHeartbeats, Expr::value(0))
                .col_expr(
                    wework_instances::Column::ErrorMessage,
                    Expr::value(Option::<String>::None),
                );
            if let Some(version) = health.version {
                update = update.col_expr(
                    wework_instances::Column::Version,
                    Expr::value(version.chars().take(20).collect::<String>()),
                );
            }
            if recovered {
                update = update
                    .col_expr(
                        wework_instances::Column::RestartCount,
                        Expr::value(instance.restart_count + 1),
                    )
                    .col_expr(wework_instances::Column::LastRestartTime, Expr::value(now));
            }
            update
                .filter(wework_instances::Column::Id.eq(instance.id))
                .filter(not_maintenance)
                .exec(&ctx.db)
                .await?;
            if instance.status != InstanceStatus::Online {
                tracing::info!(instance.id = instance.id, latency_ms, "instance online");
            }
            record_latency(ctx, instance.id, latency_ms).await;
            ctx.telemetry.metric(
                health_point(ctx, instance, true, 0).int("latency_ms", i64::from(latency_ms)),
            );
            Ok(Beat::Online { latency_ms })
        }
        Err(error) => {
            let missed = instance.missed_heartbeats + 1;
            let permanent = matches!(
                error,
                DriverError::Permanent { .. } | DriverError::Unsupported(_)
            );
            let status = if permanent {
                InstanceStatus::Error
            } else if missed >= ctx.settings.instances.offline_after_missed {
                InstanceStatus::Offline
            } else {
                instance.status
            };
            wework_instances::Entity::update_many()
                .col_expr(wework_instances::Column::Status, Expr::value(status))
                .col_expr(
                    wework_instances::Column::MissedHeartbeats,
                    Expr::value(missed),
                )
                .col_expr(
                    wework_instances::Column::ErrorMessage,
                    Expr::value(error.to_string()),
                )
                .filter(wework_instances::Column::Id.eq(instance.id))
                .filter(not_maintenance)
                .exec(&ctx.db)
                .await?;
            if status != instance.status {
                tracing::warn!(instance.id = instance.id, %status, error = %error, "instance status changed");
            } else {
                tracing::debug!(instance.id = instance.id, missed, error = %error, "heartbeat failed");
            }
            ctx.telemetry
                .metric(health_point(ctx, instance, false, missed).int("errors", 1));
            Ok(Beat::Failed {
                error: error.to_string(),
                permanent,
            })
        }
    }
}

/// The `instance_health` point of one heartbeat (latency is added by the caller when known).
fn health_point(
    ctx: &Context,
    instance: &wework_instances::Model,
    online: bool,
    missed: i32,
) -> crate::telemetry::Point {
    crate::telemetry::Point::new("instance_health", ctx.clock.now())
        .tag("instance", instance.id)
        .tag("instance_name", &instance.name)
        .tag("kind", instance.kind)
        .bool("online", online)
        .int("accounts", i64::from(instance.current_accounts))
        .int("missed_heartbeats", i64::from(missed))
}

/// Raw latency sample for dashboards; a failure here must not fail the heartbeat.
async fn record_latency(ctx: &Context, instance_id: i64, latency_ms: i32) {
    let sample = instance_monitors::ActiveModel {
        instance_id: Set(instance_id),
        metric_name: Set("heartbeat_latency_ms".to_owned()),
        metric_value: Set(f64::from(latency_ms)),
        metric_unit: Set(Some("ms".to_owned())),
        bucket_seconds: Set(0),
        sample_count: Set(1),
        collected_at: Set(ctx.clock.now_db()),
        ..Default::default()
    };
    if let Err(e) = instance_monitors::Entity::insert(sample)
        .exec_without_returning(&ctx.db)
        .await
    {
        tracing::warn!(error = %e, "could not store a latency sample");
    }
}
