//! The scheduler: starts one-shot tasks whose time has come and claims each cron firing exactly
//! once (a conditional UPDATE on `next_fire_at`, then a run whose (task, scheduled_for) is
//! unique), so any number of schedulers may run side by side.

use chrono::{NaiveDateTime, Utc};
use entity::{message_task_runs, message_tasks};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, Condition, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder,
    QuerySelect, sea_query::Expr,
};

use super::spec::CronSchedule;
use crate::{Context, ServiceResult};

/// Starts every due task or firing; returns the runs created.
pub async fn tick(ctx: &Context) -> ServiceResult<Vec<i64>> {
    let now = ctx.clock.now_db();
    let mut runs = Vec::new();
    let one_shot = message_tasks::Entity::find()
        .filter(message_tasks::Column::DeletedAt.is_null())
        .filter(message_tasks::Column::Status.eq("scheduled"))
        .filter(message_tasks::Column::CronExpression.is_null())
        .filter(
            Condition::any()
                .add(message_tasks::Column::ScheduledTime.is_null())
                .add(message_tasks::Column::ScheduledTime.lte(now)),
        )
        .order_by_asc(message_tasks::Column::Priority)
        .order_by_asc(message_tasks::Column::Id)
        .limit(100)
        .all(&ctx.db)
        .await?;
    for task in one_shot {
        let claimed = message_tasks::Entity::update_many()
            .col_expr(message_tasks::Column::Status, Expr::value("running"))
            .col_expr(message_tasks::Column::StartedAt, Expr::value(now))
            .col_expr(message_tasks::Column::UpdatedAt, Expr::value(now))
            .filter(message_tasks::Column::Id.eq(task.id))
            .filter(message_tasks::Column::Status.eq("scheduled"))
            .exec(&ctx.db)
            .await?;
        if claimed.rows_affected == 1 {
            let at = task.scheduled_time.unwrap_or(task.created_at);
            if let Some(run) = create_run(ctx, &task, at).await? {
                runs.push(run);
            }
        }
    }
    let recurring = message_tasks::Entity::find()
        .filter(message_tasks::Column::DeletedAt.is_null())
        .filter(message_tasks::Column::Status.eq("scheduled"))
        .filter(message_tasks::Column::CronExpression.is_not_null())
        .filter(message_tasks::Column::NextFireAt.lte(now))
        .order_by_asc(message_tasks::Column::Priority)
        .limit(100)
        .all(&ctx.db)
        .await?;
    for task in recurring {
        let (Some(cron), Some(fire_at)) = (task.cron_expression.as_deref(), task.next_fire_at)
        else {
            continue;
        };
        let Ok(schedule) = CronSchedule::parse(cron, task.timezone.as_deref().unwrap_or("UTC"))
        else {
            continue;
        };
        // Missed firings (the platform was down) are not replayed: the next one is after now.
        let next = schedule
            .next_after(Utc::now().max(fire_at.and_utc()))
            .map(|t| t.naive_utc());
        let claimed = message_tasks::Entity::update_many()
            .col_expr(message_tasks::Column::NextFireAt, Expr::value(next))
            .col_expr(message_tasks::Column::Status, Expr::value("running"))
            .col_expr(message_tasks::Column::StartedAt, Expr::value(now))
            .col_expr(message_tasks::Column::UpdatedAt, Expr::value(now))
            .filter(message_tasks::Column::Id.eq(task.id))
            .filter(message_tasks::Column::Status.eq("scheduled"))
            .filter(message_tasks::Column::NextFireAt.eq(fire_at))
            .exec(&ctx.db)
            .await?;
        if claimed.rows_affected == 1
            && let Some(run) = create_run(ctx, &task, fire_at).await?
        {
            runs.push(run);
        }
    }
    Ok(runs)
}

/// A new run in `expanding`; `None` when this firing already has one.
pub async fn create_run(
    ctx: &Context,
    task: &message_tasks::Model,
    scheduled_for: NaiveDateTime,
) -> ServiceResult<Option<i64>> {
    let now = ctx.clock.now_db();
    let previous = message_task_runs::Entity::find()
        .filter(message_task_runs::Column::TaskId.eq(task.id))
        .count(&ctx.db)
        .await?;
    let row = message_task_runs::ActiveModel {
        task_id: Set(task.id),
        run_number: Set(i32::try_from(previous + 1).unwrap_or(i32::MAX)),
        scheduled_for: Set(scheduled_for),
        status: Set("expanding".to_owned()),
        target_count: Set(0),
        success_count: Set(0),
        fail_count: Set(0),
        skipped_count: Set(0),
        awaiting_count: Set(0),
        last_activity_at: Set(Some(now)),
        created_at: Set(now),
        updated_at: Set(now),
        ..Default::default()
    };
    let id = match message_task_runs::Entity::insert(row).exec(&ctx.db).await {
        Ok(inserted) => inserted.last_insert_id,
        Err(e) => {
            tracing::info!(task.id = task.id, error = %e, "this firing already has a run");
            return Ok(None);
        }
    };
    message_tasks::Entity::update_many()
        .col_expr(message_tasks::Column::CurrentRunId, Expr::value(id))
        .filter(message_tasks::Column::Id.eq(task.id))
        .exec(&ctx.db)
        .await?;
    if let Some(template) = task.template_id {
        crate::templates::record_use(&ctx.db, template, now).await?;
    }
    tracing::info!(task.id = task.id, run.id = id, "task run started");
    Ok(Some(id))
}
