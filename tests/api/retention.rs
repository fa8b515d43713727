//! Retention of what grows with traffic: chat messages and broadcast receiver records go once
//! they are older than the configured days (never, by default); the task keeps its totals.

use chrono::{TimeDelta, Utc};
use entity::{message_receivers, message_task_runs, messages, states::TaskStatus};
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, sea_query::Expr};
use serde_json::json;
use service::tasks::TaskView;

use crate::helpers::{TestApp, TestSim};

/// Sends a broadcast to every contact of `agent` and waits for it to complete.
async fn broadcast(app: &TestApp, agent: i64, name: &str) -> TaskView {
    let admin = app.admin_token().await;
    let created: TaskView = app
        .post_as(
            "/api/v1/tasks",
            &admin,
            json!({ "name": name, "task_type": "broadcast", "content": "{{ nickname }}，周末特惠", "rate_per_minute": 6000,
                    "audience": { "filter": { "instance_ids": [agent] } } }),
        )
        .await;
    app.wait_for_as(
        &format!("/api/v1/tasks/{}", created.id),
        90,
        |t: &TaskView| t.status == TaskStatus::Completed,
    )
    .await
}

#[tokio::test]
async fn old_messages_and_receivers_of_old_runs_go_and_task_totals_stay() {
    let sim = TestSim::small();
    let mut app = TestApp::spawn_with(
        "[worker]\nmessage_retention_days = 30\nreceiver_retention_days = 40\n",
    )
    .await;
    let agent = app.with_synced_agent(&sim).await;
    let old = broadcast(&app, agent, "上个月的群发").await;
    let recent = broadcast(&app, agent, "本周的群发").await;
    let db = &app.ctx.db;
    let receivers_of = |task: i64| {
        message_receivers::Entity::find()
            .filter(message_receivers::Column::TaskId.eq(task))
            .count(db)
    };
    let sent = receivers_of(old.id).await.unwrap();
    assert_eq!(sent, 240);
    assert_eq!(receivers_of(recent.id).await.unwrap(), 240);

    // The first broadcast ended 41 days ago and its messages were written 31 days ago.
    let long_ago = |days| (Utc::now() - TimeDelta::days(days)).naive_utc();
    message_task_runs::Entity::update_many()
        .col_expr(
            message_task_runs::Column::CompletedAt,
            Expr::value(long_ago(41)),
        )
        .filter(message_task_runs::Column::TaskId.eq(old.id))
        .exec(db)
        .await
        .unwrap();
    messages::Entity::update_many()
        .col_expr(messages::Column::CreatedAt, Expr::value(long_ago(31)))
        .filter(messages::Column::TaskId.eq(old.id))
        .exec(db)
        .await
        .unwrap();
    let messages_of = |task: i64| {
        messages::Entity::find()
            .filter(messages::Column::TaskId.eq(task))
            .count(db)
    };
    let old_messages = messages_of(old.id).await.unwrap();
    assert!(old_messages > 0);

    let swept = service::housekeeping::sweep(&app.ctx).await.unwrap();
    assert_eq!((swept.receivers, swept.messages), (sent, old_messages));
    assert_eq!(receivers_of(old.id).await.unwrap(), 0);
    assert_eq!(messages_of(old.id).await.unwrap(), 0);
    assert_eq!(receivers_of(recent.id).await.unwrap(), 240);
    assert!(messages_of(recent.id).await.unwrap() > 0);
    // The task still says what it did.
    let kept = app.task(old.id).await;
    assert_eq!(kept.counts.success, old.counts.success);
    // A second pass finds nothing more.
    let again = service::housekeeping::sweep(&app.ctx).await.unwrap();
    assert_eq!((again.receivers, again.messages), (0, 0));
}
