//! The scheduler: starts one-shot tasks whose time has come and claims each cron firing exactly
//! once. Claiming the task (a conditional UPDATE on its status and `next_fire_at`) and creating
//! the firing's run happen in one transaction, so any number of schedulers may run side by side
//! and a scheduler that dies half-way leaves the task as it was, never `running` without a run.

use chrono::{NaiveDateTime, Utc};
use entity::states::{RunStatus, TaskStatus};
use entity::{message_task_runs, message_tasks};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, Condition, ConnectionTrait, DatabaseTransaction, EntityTrait,
    PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, sea_query::Expr,
};

use super::spec::CronSchedule;
use crate::{Context, ServiceResult};

/// Starts every due task or firing; returns the runs created.
pub async fn tick(ctx: &Context) -> ServiceResult<Vec<i64>> {
    let now = ctx.clock.now_db();
    let mut runs = Vec::new();
    let one_shot = message_tasks::Entity::find()
        .filter(message_tasks::Column::DeletedAt.is_null())
        .filter(message_tasks::Column::Status.eq(TaskStatus::Scheduled))
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
        let claim = message_tasks::Entity::update_many()
            .col_expr(
                message_tasks::Column::Status,
                Expr::value(TaskStatus::Running),
            )
            .col_expr(message_tasks::Column::StartedAt, Expr::value(now))
            .col_expr(message_tasks::Column::UpdatedAt, Expr::value(now))
            .filter(message_tasks::Column::Id.eq(task.id))
            .filter(message_tasks::Column::Status.eq(TaskStatus::Scheduled));
        let at = task.scheduled_time.unwrap_or(task.created_at);
        if let Some(run) = start_firing(ctx, &task, &claim, at).await? {
            runs.push(run);
        }
    }
    let recurring = message_tasks::Entity::find()
        .filter(message_tasks::Column::DeletedAt.is_null())
        .filter(message_tasks::Column::Status.eq(TaskStatus::Scheduled))
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
        let claim = message_tasks::Entity::update_many()
            .col_expr(message_tasks::Column::NextFireAt, Expr::value(next))
            .col_expr(
                message_tasks::Column::Status,
                Expr::value(TaskStatus::Running),
            )
            .col_expr(message_tasks::Column::StartedAt, Expr::value(now))
            .col_expr(message_tasks::Column::UpdatedAt, Expr::value(now))
            .filter(message_tasks::Column::Id.eq(task.id))
            .filter(message_tasks::Column::Status.eq(TaskStatus::Scheduled))
            .filter(message_tasks::Column::NextFireAt.eq(fire_at));
        if let Some(run) = start_firing(ctx, &task, &claim, fire_at).await? {
            runs.push(run);
        }
    }
    Ok(runs)
}

/// When the next task or cron firing falls due (a past time when some are due already), so
/// the scheduler sleeps until then rather than polling; `None` when nothing is scheduled.
pub async fn next_due(ctx: &Context) -> ServiceResult<Option<NaiveDateTime>> {
    let scheduled = || {
        message_tasks::Entity::find()
            .filter(message_tasks::Column::DeletedAt.is_null())
            .filter(message_tasks::Column::Status.eq(TaskStatus::Scheduled))
    };
    let earliest = |column: message_tasks::Column,
                    query: sea_orm::Select<message_tasks::Entity>| {
        query
            .select_only()
            .column_as(column.min(), "earliest")
            .into_tuple::<Option<NaiveDateTime>>()
            .one(&ctx.db)
    };
    let start_now = scheduled()
        .filter(message_tasks::Column::CronExpression.is_null())
        .filter(message_tasks::Column::ScheduledTime.is_null())
        .count(&ctx.db)
        .await?;
    if start_now > 0 {
        return Ok(Some(ctx.clock.now_db()));
    }
    let one_shot = earliest(
        message_tasks::Column::ScheduledTime,
        scheduled().filter(message_tasks::Column::CronExpression.is_null()),
    )
    .await?
    .flatten();
    let recurring = earliest(
        message_tasks::Column::NextFireAt,
        scheduled().filter(message_tasks::Column::CronExpression.is_not_null()),
    )
    .await?
    .flatten();
    Ok(one_shot.into_iter().chain(recurring).min())
}

/// Claims the task with `claim` and creates the firing's run, both or neither. `None` when
/// another scheduler claimed it first, or when this firing already ran (a one-shot task resumed
/// to `scheduled` after its run ended): the task then takes the state that run left it in.
/// Schedulers racing for one task may deadlock on MySQL (each holds an index entry the other's
/// claim needs); the loser changed nothing and tries again, its claim then finding the task taken.
async fn start_firing(
    ctx: &Context,
    task: &message_tasks::Model,
    claim: &sea_orm::UpdateMany<message_tasks::Entity>,
    scheduled_for: NaiveDateTime,
) -> ServiceResult<Option<i64>> {
    crate::db::retry_lock_conflicts("task start", || {
        start_firing_once(ctx, task, claim.clone(), scheduled_for)
    })
    .await
}

async fn start_firing_once(
    ctx: &Context,
    task: &message_tasks::Model,
    claim: sea_orm::UpdateMany<message_tasks::Entity>,
    scheduled_for: NaiveDateTime,
) -> ServiceResult<Option<i64>> {
    let txn = crate::db::begin(&ctx.db).await?;
    if claim.exec(&txn).await?.rows_affected != 1 {
        txn.rollback().await?;
        return Ok(None);
    }
    let earlier = message_task_runs::Entity::find()
        .filter(message_task_runs::Column::TaskId.eq(task.id))
        .filter(message_task_runs::Column::ScheduledFor.eq(scheduled_for))
        .one(&txn)
        .await?;
    if let Some(run) = earlier {
        let status = run.status.task_status(task.cron_expression.is_some());
        set_status_after_run(&txn, task.id, &run, status, ctx.clock.now_db()).await?;
        txn.commit().await?;
        tracing::warn!(
            task.id = task.id,
            run.id = run.id,
            %status,
            "this firing already ran; the task follows its run"
        );
        return Ok(None);
    }
    let run = insert_run(
        &txn,
        task,
        scheduled_for,
        RunStatus::Expanding,
        ctx.clock.now_db(),
    )
    .await?;
    txn.commit().await?;
    tracing::info!(task.id = task.id, run.id = run, "task run started");
    Ok(Some(run))
}

/// Inserts a run of `task` in `status` and makes it the task's current run, inside the caller's
/// transaction: workers see the run only once everything it needs is committed with it.
pub(crate) async fn insert_run(
    txn: &DatabaseTransaction,
    task: &message_tasks::Model,
    scheduled_for: NaiveDateTime,
    status: RunStatus,
    now: NaiveDateTime,
) -> ServiceResult<i64> {
    let previous = message_task_runs::Entity::find()
        .filter(message_task_runs::Column::TaskId.eq(task.id))
        .count(txn)
        .await?;
    let row = message_task_runs::ActiveModel {
        task_id: Set(task.id),
        run_number: Set(i32::try_from(previous + 1).unwrap_or(i32::MAX)),
        scheduled_for: Set(scheduled_for),
        status: Set(status),
        target_count: Set(0),
        success_count: Set(0),
        fail_count: Set(0),
        skipped_count: Set(0),
        awaiting_count: Set(0),
        started_at: Set((status == RunStatus::Running).then_some(now)),
        last_activity_at: Set(Some(now)),
        created_at: Set(now),
        updated_at: Set(now),
        ..Default::default()
    };
    let id = message_task_runs::Entity::insert(row)
        .exec(txn)
        .await?
        .last_insert_id;
    message_tasks::Entity::update_many()
        .col_expr(message_tasks::Column::CurrentRunId, Expr::value(id))
        .filter(message_tasks::Column::Id.eq(task.id))
        .exec(txn)
        .await?;
    if let Some(template) = task.template_id {
        crate::templates::record_use(txn, template, now).await?;
    }
    Ok(id)
}

/// Moves the task to `status`, taken from `run` (see `RunStatus::task_status`).
pub(crate) async fn set_status_after_run<C: ConnectionTrait>(
    conn: &C,
    task_id: i64,
    run: &message_task_runs::Model,
    status: TaskStatus,
    now: NaiveDateTime,
) -> ServiceResult<()> {
    let mut update = message_tasks::Entity::update_many()
        .col_expr(message_tasks::Column::Status, Expr::value(status))
        .col_expr(message_tasks::Column::CurrentRunId, Expr::value(run.id))
        .col_expr(message_tasks::Column::UpdatedAt, Expr::value(now));
    if status == TaskStatus::Completed {
        update = update
            .col_expr(
                message_tasks::Column::CompletedAt,
                Expr::value(run.completed_at.unwrap_or(now)),
            )
            .col_expr(message_tasks::Column::Progress, Expr::value(100.0));
    }
    update
        .filter(message_tasks::Column::Id.eq(task_id))
        .exec(conn)
        .await?;
    Ok(())
}
