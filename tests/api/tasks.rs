//! The broadcast engine end to end against the simulator: personalised broadcasts delivered once
//! each, counters matching the receivers, pause/resume/cancel, quiet hours, frequency caps, cron
//! runs, retries, auto-pause, idempotent creation, single messages, reports and progress.

use std::time::Duration;

use entity::states::{ReceiverStatus, RunStatus, TaskStatus};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use service::{
    contacts::ContactView,
    messages::MessageView,
    pagination::Page,
    tasks::{
        TaskView,
        report::{ReceiverView, RunView},
    },
    templates::TemplateView,
};

use crate::helpers::{TestApp, TestSim, answer, fields, problem};

/// A synced agent instance of a small sim and a running worker; small chunks so controls bite.
pub(crate) async fn ready(extra: &str) -> (TestSim, TestApp, i64) {
    let sim = TestSim::small();
    let mut app = TestApp::spawn_with(&format!(
        "[dispatch]\nchunk_size = 5\nconcurrency = 4\n{extra}"
    ))
    .await;
    let agent = app.with_synced_agent(&sim).await;
    (sim, app, agent)
}

pub(crate) async fn create(app: &TestApp, body: Value) -> TaskView {
    let admin = app.admin_token().await;
    let response = app.post("/api/v1/tasks", &admin, body).await;
    answer(response, StatusCode::CREATED).await
}

/// A broadcast to every contact of `agent` at `rate_per_minute` per account: slow enough that
/// it is still sending when a test steps in.
pub(crate) async fn slow_task(app: &TestApp, agent: i64, rate_per_minute: u32) -> TaskView {
    create(app, json!({ "name": "慢速", "task_type": "broadcast", "content": "x", "audience": { "filter": { "instance_ids": [agent] } }, "rate_per_minute": rate_per_minute })).await
}

pub(crate) async fn wait_status(
    app: &TestApp,
    task: i64,
    status: TaskStatus,
    seconds: u64,
) -> TaskView {
    app.wait_for_as(&format!("/api/v1/tasks/{task}"), seconds, |t: &TaskView| {
        t.status == status
    })
    .await
}

pub(crate) async fn delivered(sim: &TestSim) -> Value {
    sim.control(Method::GET, "/stats", json!({}))
        .await
        .json::<Value>()
        .await
        .unwrap()["deliveries"]
        .clone()
}

/// The first `n` contacts synced from the agent, as the API lists them.
pub(crate) async fn first_contacts(app: &TestApp, agent: i64, n: usize) -> Vec<ContactView> {
    let admin = app.admin_token().await;
    let listed: Page<ContactView> = app
        .get_as(
            &format!("/api/v1/contacts?instance_id={agent}&limit={n}"),
            &admin,
        )
        .await;
    listed.items
}

fn ids_of(contacts: &[ContactView]) -> Vec<i64> {
    contacts.iter().map(|c| c.id).collect()
}

/// The sends went through apalis jobs on the configured queue: keys of the test's own queue in
/// Redis, or finished jobs in the embedded SQLite queue file.
async fn assert_dispatched_through_the_queue(app: &TestApp) {
    let settings = &app.ctx.settings;
    if let Some(mut redis) = app.ctx.redis.clone() {
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{}dispatch:*", settings.redis.key_prefix))
            .query_async(&mut redis)
            .await
            .unwrap();
        assert!(!keys.is_empty(), "no dispatch queue in redis");
    } else {
        use sea_orm::ConnectionTrait;
        let queue = sea_orm::Database::connect(format!("sqlite://{}", settings.worker.queue_path))
            .await
            .unwrap();
        let done = queue
            .query_one_raw(sea_orm::Statement::from_string(
                sea_orm::DbBackend::Sqlite,
                "SELECT COUNT(*) AS n FROM Jobs WHERE job_type = 'dispatch' AND status = 'Done'",
            ))
            .await
            .unwrap()
            .unwrap()
            .try_get::<i64>("", "n")
            .unwrap();
        assert!(done >= 1, "no finished dispatch job in the embedded queue");
    }
}

/// Receivers are written with their sending accounts taking turns, so every chunk spans the
/// accounts and their rate limits work in parallel.
async fn assert_accounts_interleaved(app: &TestApp, task: i64) {
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
    let first: Vec<Option<i64>> = entity::message_receivers::Entity::find()
        .select_only()
        .column(entity::message_receivers::Column::AccountId)
        .filter(entity::message_receivers::Column::TaskId.eq(task))
        .order_by_asc(entity::message_receivers::Column::Id)
        .limit(20)
        .into_tuple()
        .all(&app.ctx.db)
        .await
        .unwrap();
    let distinct: std::collections::BTreeSet<_> = first.iter().collect();
    assert_eq!(
        distinct.len(),
        2,
        "the first receivers alternate accounts: {first:?}"
    );
    assert!(first.windows(2).all(|w| w[0] != w[1]), "{first:?}");
}

pub(crate) fn assert_consistent(task: &TaskView) {
    let c = &task.counts;
    let sum = c.success + c.failed + c.skipped + c.awaiting + c.pending;
    assert_eq!(sum, c.target, "counters add up: {c:?}");
}

#[tokio::test]
async fn a_personalised_broadcast_reaches_every_receiver_exactly_once() {
    let (sim, app, agent) = ready("").await;
    let admin = app.admin_token().await;
    let template: TemplateView = app
        .post_as("/api/v1/templates", &admin, json!({
            "name": "双十一", "message_type": "text",
            "content": "{{ name }}您好，您的专属优惠码是 {{ coupon }}，{% if 'VIP' in tags %}VIP 再享九折{% endif %}",
            "variables": [{ "name": "coupon", "type": "string", "required": true }]
        }))
        .await;
    let task = create(&app, json!({
        "name": "全量群发", "task_type": "broadcast", "template_id": template.id, "variables": { "coupon": "W11-2026" },
        "audience": { "filter": { "instance_ids": [agent] } }, "rate_per_minute": 6000
    }))
    .await;
    let id = task.id;
    let done = wait_status(&app, id, TaskStatus::Completed, 90).await;
    assert_consistent(&done);
    assert_dispatched_through_the_queue(&app).await;
    assert_accounts_interleaved(&app, id).await;
    assert_eq!(done.counts.target, 240);
    assert_eq!(done.counts.success, 240);
    assert_eq!(done.progress, 100.0);
    let stats = delivered(&sim).await;
    assert_eq!(stats["delivered"], 240, "{stats}");
    let deliveries: Vec<Value> = sim
        .control(Method::GET, "/deliveries", json!({}))
        .await
        .json()
        .await
        .unwrap();
    assert!(
        deliveries
            .iter()
            .all(|d| d["content"].as_str().unwrap().contains("W11-2026"))
    );
    assert!(
        deliveries
            .iter()
            .any(|d| d["content"].as_str().unwrap().contains("VIP 再享九折")),
        "per-receiver personalisation"
    );
    let template: TemplateView = app
        .get_as(&format!("/api/v1/templates/{}", template.id), &admin)
        .await;
    assert_eq!(template.use_count, 1);
    let sent: Page<MessageView> = app
        .get_as(&format!("/api/v1/messages?task_id={id}&limit=200"), &admin)
        .await;
    assert_eq!(
        sent.items.len(),
        200,
        "the outbound log holds every message"
    );
    let report = app
        .get(
            &format!("/api/v1/tasks/{id}/report.csv?status=sent"),
            &admin,
        )
        .await;
    assert_eq!(
        report
            .text()
            .await
            .unwrap()
            .trim_start_matches('\u{feff}')
            .lines()
            .count(),
        241
    );
    let failed: Page<ReceiverView> = app
        .get_as(
            &format!("/api/v1/tasks/{id}/receivers?status=failed"),
            &admin,
        )
        .await;
    assert!(failed.items.is_empty());
}

#[tokio::test]
async fn pause_holds_within_a_chunk_resume_finishes_and_cancel_skips_the_rest() {
    let (sim, app, agent) = ready("").await;
    let admin = app.admin_token().await;
    let body = |name: &str| json!({ "name": name, "task_type": "broadcast", "content": "您好 {{ nickname }}", "audience": { "filter": { "instance_ids": [agent] } }, "rate_per_minute": 120 });
    let task = create(&app, body("慢速群发")).await;
    let id = task.id;
    app.wait_for_as(&format!("/api/v1/tasks/{id}"), 30, |t: &TaskView| {
        t.counts.success >= 4
    })
    .await;
    let paused = app
        .post(
            &format!("/api/v1/tasks/{id}/pause"),
            &admin,
            json!({ "reason": "核对文案" }),
        )
        .await;
    assert_eq!(paused.status(), StatusCode::OK);
    tokio::time::sleep(Duration::from_secs(8)).await;
    let at_pause = delivered(&sim).await["delivered"].as_i64().unwrap();
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(
        delivered(&sim).await["delivered"].as_i64().unwrap(),
        at_pause,
        "nothing goes out while paused"
    );
    let view: TaskView = app.get_as(&format!("/api/v1/tasks/{id}"), &admin).await;
    assert_eq!(view.status, TaskStatus::Paused);
    assert_eq!(view.pause_reason.as_deref(), Some("核对文案"));
    assert_consistent(&view);
    let again = app
        .post(&format!("/api/v1/tasks/{id}/pause"), &admin, json!({}))
        .await;
    assert_eq!(
        problem(again, StatusCode::CONFLICT).await["code"],
        "conflict"
    );

    let cancelled: TaskView = app
        .post_as(&format!("/api/v1/tasks/{id}/cancel"), &admin, json!({}))
        .await;
    assert_eq!(cancelled.status, TaskStatus::Cancelled);
    let settled = app
        .wait_for_as(&format!("/api/v1/tasks/{id}"), 20, |t: &TaskView| {
            t.counts.pending == 0
        })
        .await;
    assert_consistent(&settled);
    assert!(
        settled.counts.skipped > 100,
        "the rest was skipped as cancelled: {:?}",
        settled.counts
    );
    let skipped: Page<ReceiverView> = app
        .get_as(
            &format!("/api/v1/tasks/{id}/receivers?status=skipped&limit=1"),
            &admin,
        )
        .await;
    assert_eq!(skipped.items[0].send_status, ReceiverStatus::Skipped);
    assert_eq!(skipped.items[0].skip_reason.as_deref(), Some("cancelled"));

    let second = create(&app, json!({ "name": "可恢复", "task_type": "broadcast", "content": "hello {{ wxid }}", "audience": { "filter": { "instance_ids": [agent] } }, "rate_per_minute": 6000 })).await;
    let sid = second.id;
    // The pause lands as the scheduler starts the task (it wakes the moment a task is
    // created): it must hold either way.
    let paused = app
        .post(&format!("/api/v1/tasks/{sid}/pause"), &admin, json!({}))
        .await;
    let _: TaskView = answer(paused, StatusCode::OK).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let resumed = app
        .post(&format!("/api/v1/tasks/{sid}/resume"), &admin, json!({}))
        .await;
    let _: TaskView = answer(resumed, StatusCode::OK).await;
    let done = wait_status(&app, sid, TaskStatus::Completed, 60).await;
    assert_eq!(done.counts.success, 240);
}

#[tokio::test]
async fn quiet_hours_hold_sends_until_the_window_ends() {
    let (sim, app, agent) = ready("").await;
    let admin = app.admin_token().await;
    let now = chrono::Utc::now();
    let start = (now - chrono::Duration::minutes(5))
        .format("%H:%M")
        .to_string();
    let end = (now + chrono::Duration::minutes(30))
        .format("%H:%M")
        .to_string();
    let task = create(&app, json!({
        "name": "夜间勿扰", "task_type": "broadcast", "content": "早上好", "rate_per_minute": 6000,
        "audience": { "filter": { "instance_ids": [agent] } },
        "quiet_hours": { "start": start, "end": end, "timezone": "UTC" }
    }))
    .await;
    let id = task.id;
    let running = app
        .wait_for_as(&format!("/api/v1/tasks/{id}"), 20, |t: &TaskView| {
            t.counts.target == 240
        })
        .await;
    assert_eq!(running.status, TaskStatus::Running);
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        delivered(&sim).await["delivered"],
        0,
        "nothing is sent inside the quiet window"
    );
    let pending: Page<ReceiverView> = app
        .get_as(
            &format!("/api/v1/tasks/{id}/receivers?status=pending&limit=1"),
            &admin,
        )
        .await;
    assert!(
        pending.items[0].next_attempt_at.is_some(),
        "receivers wait for the window's end"
    );
}

#[tokio::test]
async fn frequency_caps_skip_contacts_already_reached() {
    let (_sim, app, agent) = ready("").await;
    let admin = app.admin_token().await;
    let ids = ids_of(&first_contacts(&app, agent, 3).await);
    let body = |name: &str| json!({ "name": name, "task_type": "batch", "content": "通知", "audience": { "contact_ids": ids }, "rate_per_minute": 6000, "frequency_cap": { "max": 1, "window_hours": 24 } });
    let first = create(&app, body("第一次")).await;
    let done = wait_status(&app, first.id, TaskStatus::Completed, 30).await;
    assert_eq!(done.counts.success, 3);
    let second = create(&app, body("第二次")).await;
    let done = wait_status(&app, second.id, TaskStatus::Completed, 30).await;
    assert_eq!(done.counts.skipped, 3);
    assert_consistent(&done);
    let skipped: Page<ReceiverView> = app
        .get_as(
            &format!(
                "/api/v1/tasks/{}/receivers?status=skipped&limit=1",
                second.id
            ),
            &admin,
        )
        .await;
    assert_eq!(skipped.items[0].send_status, ReceiverStatus::Skipped);
    assert_eq!(
        skipped.items[0].skip_reason.as_deref(),
        Some("frequency_cap")
    );
}

#[tokio::test]
async fn cron_tasks_fire_repeatedly_each_run_with_its_own_receivers() {
    let (_sim, app, agent) = ready("").await;
    let admin = app.admin_token().await;
    let ids = ids_of(&first_contacts(&app, agent, 2).await);
    let task = create(&app, json!({ "name": "每两秒", "task_type": "batch", "content": "定时 {{ nickname }}", "audience": { "contact_ids": ids }, "rate_per_minute": 6000, "cron": "*/2 * * * * *", "timezone": "Asia/Shanghai" })).await;
    let id = task.id;
    assert!(task.next_fire_at.is_some());
    let completed = |r: &&RunView| r.status == RunStatus::Completed;
    let runs = app
        .wait_for_as(
            &format!("/api/v1/tasks/{id}/runs"),
            30,
            |r: &Page<RunView>| r.items.iter().filter(completed).count() >= 2,
        )
        .await;
    for run in runs.items.iter().filter(completed) {
        assert_eq!(run.counts.target, 2);
        assert_eq!(run.counts.success, 2);
    }
    let cancelled: TaskView = app
        .post_as(&format!("/api/v1/tasks/{id}/cancel"), &admin, json!({}))
        .await;
    assert_eq!(cancelled.status, TaskStatus::Cancelled);
    let bad = app.post("/api/v1/tasks", &admin, json!({ "name": "x", "task_type": "batch", "content": "x", "audience": { "contact_ids": ids }, "cron": "every day" })).await;
    assert_eq!(
        fields(&problem(bad, StatusCode::UNPROCESSABLE_ENTITY).await),
        vec!["cron"]
    );
}

#[tokio::test]
async fn transient_failures_retry_and_permanent_ones_fail_with_their_reason() {
    let (sim, app, agent) = ready("").await;
    let admin = app.admin_token().await;
    let items = first_contacts(&app, agent, 4).await;
    let ids = ids_of(&items);
    sim.control(
        Method::POST,
        "/contacts/remove",
        json!({ "wxids": [items[0].wxid] }),
    )
    .await;
    sim.control(Method::PUT, "/faults", json!({ "error_rate": 1.0 }))
        .await;
    let task = create(&app, json!({ "name": "重试", "task_type": "batch", "content": "hi", "audience": { "contact_ids": ids }, "rate_per_minute": 6000, "max_retry": 5 })).await;
    let id = task.id;
    app.wait_for_as(
        &format!("/api/v1/tasks/{id}/receivers?status=pending"),
        20,
        |r: &Page<ReceiverView>| r.items.iter().any(|x| x.retry_count >= 1),
    )
    .await;
    sim.control(Method::PUT, "/faults", json!({})).await;
    let done = wait_status(&app, id, TaskStatus::Completed, 60).await;
    assert_consistent(&done);
    assert_eq!(done.counts.success, 3);
    assert_eq!(done.counts.failed, 1);
    let failed: Page<ReceiverView> = app
        .get_as(
            &format!("/api/v1/tasks/{id}/receivers?status=failed"),
            &admin,
        )
        .await;
    assert_eq!(failed.items[0].send_status, ReceiverStatus::Failed);
    assert_eq!(failed.items[0].error_code.as_deref(), Some("not_friend"));
    sim.control(
        Method::POST,
        "/contacts/restore",
        json!({ "wxids": [items[0].wxid] }),
    )
    .await;
    let retried: TaskView = app
        .post_as(
            &format!("/api/v1/tasks/{id}/retry-failed"),
            &admin,
            json!({}),
        )
        .await;
    assert_eq!(retried.status, TaskStatus::Running);
    let done = wait_status(&app, id, TaskStatus::Completed, 30).await;
    assert_eq!(
        done.counts.success, 4,
        "the retry run delivered the one that failed"
    );
    assert_consistent(&done);
}

#[tokio::test]
async fn a_failing_task_pauses_itself_with_the_reason() {
    let (sim, app, agent) = ready("").await;
    let items = first_contacts(&app, agent, 40).await;
    let wxids: Vec<&str> = items.iter().map(|c| c.wxid.as_str()).collect();
    sim.control(Method::POST, "/contacts/remove", json!({ "wxids": wxids }))
        .await;
    let ids = ids_of(&items);
    let task = create(&app, json!({ "name": "坏名单", "task_type": "batch", "content": "hi", "audience": { "contact_ids": ids }, "rate_per_minute": 6000, "auto_pause": { "window": 10, "failure_rate": 0.5 } })).await;
    let paused = wait_status(&app, task.id, TaskStatus::Paused, 30).await;
    let reason = paused.pause_reason.as_deref().unwrap();
    assert!(reason.starts_with("auto-paused"), "{reason}");
    assert!(paused.counts.pending > 0, "it stopped before the end");
    assert_consistent(&paused);
}

#[tokio::test]
async fn concurrent_creates_with_one_idempotency_key_make_one_task() {
    let (_sim, app, agent) = ready("").await;
    let admin = app.admin_token().await;
    let body = json!({ "name": "幂等", "task_type": "broadcast", "content": "x", "audience": { "filter": { "instance_ids": [agent] } }, "scheduled_time": "2099-01-01T00:00:00Z" });
    let send = || {
        app.request(Method::POST, "/api/v1/tasks", Some(&admin))
            .header("Idempotency-Key", "create-once-1")
            .json(&body)
            .send()
    };
    let (a, b) = tokio::join!(send(), send());
    let statuses = [a.unwrap().status(), b.unwrap().status()];
    assert!(statuses.contains(&StatusCode::CREATED), "{statuses:?}");
    let again = send().await.unwrap();
    assert_eq!(again.status(), StatusCode::CREATED);
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    let tasks: Page<TaskView> = app
        .get_as("/api/v1/tasks?q=%E5%B9%82%E7%AD%89", &admin)
        .await;
    assert_eq!(tasks.items.len(), 1, "exactly one task");
    let other_body = app.request(Method::POST, "/api/v1/tasks", Some(&admin)).header("Idempotency-Key", "create-once-1").json(&json!({ "name": "different", "task_type": "broadcast", "content": "y", "audience": { "filter": {} } })).send().await.unwrap();
    assert_eq!(
        fields(&problem(other_body, StatusCode::CONFLICT).await),
        vec!["Idempotency-Key"]
    );
}

/// A stored setting that no longer reads (a bad time zone in quiet hours, a cap out of bounds)
/// pauses the task and says which, instead of quietly switching the setting off and sending.
/// How many receivers of the task are in `status`.
async fn receivers_in(app: &TestApp, task: i64, status: ReceiverStatus) -> u64 {
    use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
    entity::message_receivers::Entity::find()
        .filter(entity::message_receivers::Column::TaskId.eq(task))
        .filter(entity::message_receivers::Column::SendStatus.eq(status))
        .count(&app.ctx.db)
        .await
        .unwrap()
}

/// Waits until no chunk holds receivers of the task: whatever was in flight has been recorded.
async fn wait_no_claims(app: &TestApp, task: i64) {
    wait_no_claims_but(app, task, 0).await;
}

/// Waits until no more than `left` receivers of the task are claimed.
async fn wait_no_claims_but(app: &TestApp, task: i64, left: u64) {
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    loop {
        let claimed = receivers_in(app, task, ReceiverStatus::Claimed).await;
        if claimed <= left {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{claimed} receivers stay claimed"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// At a few messages a minute a chunk's sends wait long for their slots (up to
/// `dispatch.max_slot_wait_secs`, 30 s here): a pause or cancel meanwhile holds them. Paused,
/// they go back to pending with no retry used and resuming sends them; cancelled, they are
/// skipped like the pending ones, and nothing is left pending in the cancelled task.
#[tokio::test]
async fn a_pause_or_cancel_holds_sends_waiting_for_their_slot() {
    let (sim, app, agent) = ready("").await;
    let admin = app.admin_token().await;
    // Two accounts at 6 a minute each: a slot every 10 s per account.
    let task = slow_task(&app, agent, 6).await;
    let id = task.id;
    let sim = &sim;
    let delivered_now = || async { delivered(sim).await["delivered"].as_i64().unwrap() };
    let wait_delivered = |n: i64| async move {
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while delivered_now().await < n {
            assert!(std::time::Instant::now() < deadline, "nothing delivered");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    let hold = |before: i64| async move {
        // A send already on its way at the control may still land; one waiting for its slot
        // (the next is 10 s away) may not.
        tokio::time::sleep(Duration::from_secs(1)).await;
        let at_control = delivered_now().await;
        assert!(at_control - before <= 4, "{before} -> {at_control}");
        tokio::time::sleep(Duration::from_secs(12)).await;
        assert_eq!(
            delivered_now().await,
            at_control,
            "nothing goes out after the control"
        );
    };

    // Once a message past `sent` was delivered, `action` while the chunk's other sends wait.
    let (app, admin) = (&app, &admin);
    let control_while_sending = |action: &'static str, sent: i64| async move {
        wait_delivered(sent + 1).await;
        let before = delivered_now().await;
        let answered = app
            .post(&format!("/api/v1/tasks/{id}/{action}"), admin, json!({}))
            .await;
        assert_eq!(answered.status(), StatusCode::OK, "{action}");
        hold(before).await;
        wait_no_claims(app, id).await;
        app.task(id).await
    };

    let view = control_while_sending("pause", 0).await;
    assert_eq!(view.status, TaskStatus::Paused);
    assert_eq!(view.counts.failed, 0, "{:?}", view.counts);
    assert_eq!(view.counts.skipped, 0, "{:?}", view.counts);
    assert_consistent(&view);
    let sent = i64::from(view.counts.success);
    assert_eq!(
        sent,
        delivered_now().await,
        "every delivery is counted once"
    );

    let resumed = app
        .post(&format!("/api/v1/tasks/{id}/resume"), admin, json!({}))
        .await;
    assert_eq!(resumed.status(), StatusCode::OK);
    let view = control_while_sending("cancel", sent).await;
    assert_eq!(view.status, TaskStatus::Cancelled);
    let c = &view.counts;
    assert_eq!(c.pending, 0, "nothing is left pending: {c:?}");
    assert_eq!(c.failed, 0, "{c:?}");
    assert_eq!(i64::from(c.success), delivered_now().await);
    assert_eq!(c.success + c.skipped, c.target, "{c:?}");
    assert_eq!(receivers_in(app, id, ReceiverStatus::Pending).await, 0);
}

/// Whether another connection waits for a row lock: on PostgreSQL any; on MariaDB, which does
/// not list a transaction waiting for its first lock in `innodb_trx`, a statement running that
/// matches `statement` (a `LIKE` pattern; the test's own have returned, so one still running is
/// waiting).
async fn a_lock_is_awaited(app: &TestApp, statement: &str) -> bool {
    use sea_orm::{ConnectionTrait, DbBackend, Statement};
    let backend = app.ctx.db.get_database_backend();
    let waits = match backend {
        DbBackend::Postgres => Statement::from_string(
            backend,
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' \
             AND datname = current_database()",
        ),
        _ => Statement::from_sql_and_values(
            backend,
            "SELECT count(*) FROM information_schema.processlist \
             WHERE db = DATABASE() AND id <> CONNECTION_ID() AND info LIKE ?",
            [statement.into()],
        ),
    };
    let row = app.ctx.db.query_one_raw(waits).await.unwrap().unwrap();
    row.try_get_by_index::<i64>(0).unwrap() > 0
}

/// A locking read of a run, as a record, a resume, a cancel and a sweep begin with.
const RUN_LOCK: &str = "%message_task_runs%FOR UPDATE%";

/// A slow broadcast (see `slow_task`) paused after its first send, once no chunk holds any of
/// its receivers: (task id, its current run's id).
async fn paused_mid_run(app: &TestApp, agent: i64, rate_per_minute: u32) -> (i64, i64) {
    let admin = app.admin_token().await;
    let id = slow_task(app, agent, rate_per_minute).await.id;
    app.wait_sent(id, 1).await;
    let paused = app
        .post(&format!("/api/v1/tasks/{id}/pause"), &admin, json!({}))
        .await;
    let run = answer::<TaskView>(paused, StatusCode::OK)
        .await
        .current_run_id
        .expect("the task is running a run");
    wait_no_claims(app, id).await;
    (id, run)
}

/// A chunk's record locks the run, then the task (its counters). A resume while a record holds
/// the run waits for it and then goes through: it takes the run's lock before the task's, so
/// the two never deadlock (one of them used to fail: PostgreSQL aborted the resume, MariaDB the
/// record). SQLite has one writer at a time and no row locks.
#[tokio::test]
async fn a_resume_waits_for_a_record_holding_the_run_and_neither_deadlocks() {
    use sea_orm::{
        ColumnTrait, DbBackend, EntityTrait, QueryFilter, QuerySelect, TransactionTrait,
        sea_query::Expr,
    };

    let (sim, app, agent) = ready("max_slot_wait_secs = 2").await;
    let backend = app.ctx.db.get_database_backend();
    if backend == DbBackend::Sqlite {
        return;
    }
    let admin = app.admin_token().await;
    let (id, run) = paused_mid_run(&app, agent, 6).await;

    // What a record does first: lock the run.
    let record = app.ctx.db.begin().await.unwrap();
    entity::message_task_runs::Entity::find_by_id(run)
        .lock_exclusive()
        .one(&record)
        .await
        .unwrap();
    let resume_path = format!("/api/v1/tasks/{id}/resume");
    let resume = app.post(&resume_path, &admin, json!({}));
    let record_counts = async {
        // Once the resume waits for a lock the record holds, the record goes on to the task row.
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while !a_lock_is_awaited(&app, RUN_LOCK).await {
            assert!(
                std::time::Instant::now() < deadline,
                "the resume never waited"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let counted = entity::message_tasks::Entity::update_many()
            .col_expr(
                entity::message_tasks::Column::UpdatedAt,
                Expr::value(app.ctx.clock.now_db()),
            )
            .filter(entity::message_tasks::Column::Id.eq(id))
            .exec(&record)
            .await;
        assert!(counted.is_ok(), "the record failed: {counted:?}");
        record.commit().await.unwrap();
    };
    let (resumed, ()) = tokio::join!(resume, record_counts);
    let resumed: TaskView = answer(resumed, StatusCode::OK).await;
    assert_eq!(resumed.status, TaskStatus::Running);
    drop(sim);
}

/// A worker that claimed up to three pending receivers of the task and died: their lease runs
/// for another hour. Returns their ids and how many it won.
async fn claim_as_a_dead_worker(app: &TestApp, task: i64) -> (Vec<i64>, u64) {
    use entity::message_receivers::{Column, Entity};
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QuerySelect, sea_query::Expr};
    let ids: Vec<i64> = Entity::find()
        .select_only()
        .column(Column::Id)
        .filter(Column::TaskId.eq(task))
        .filter(Column::SendStatus.eq(ReceiverStatus::Pending))
        .limit(3)
        .into_tuple()
        .all(&app.ctx.db)
        .await
        .unwrap();
    let claimed = Entity::update_many()
        .col_expr(Column::SendStatus, Expr::value(ReceiverStatus::Claimed))
        .col_expr(Column::LeaseOwner, Expr::value("dead-worker:1"))
        .col_expr(
            Column::LeaseExpiresAt,
            Expr::value(chrono::Utc::now().naive_utc() + chrono::TimeDelta::hours(1)),
        )
        .filter(Column::Id.is_in(ids.clone()))
        .filter(Column::SendStatus.eq(ReceiverStatus::Pending))
        .exec(&app.ctx.db)
        .await
        .unwrap()
        .rows_affected;
    (ids, claimed)
}

/// A worker died holding receivers of a task that was then cancelled: when their leases expire
/// the sweeper skips them as cancelled rather than putting them back to pending in a run that
/// nothing sends any more.
#[tokio::test]
async fn receivers_of_a_dead_worker_in_a_cancelled_task_are_skipped_not_stranded() {
    use entity::message_receivers::{Column, Entity};
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, sea_query::Expr};

    let (_sim, app, agent) = ready("").await;
    let admin = app.admin_token().await;
    let task = slow_task(&app, agent, 1).await;
    let id = task.id;
    app.wait_sent(id, 1).await;
    let (ids, claimed) = claim_as_a_dead_worker(&app, id).await;
    assert!(claimed > 0);
    let cancelled = app
        .post(&format!("/api/v1/tasks/{id}/cancel"), &admin, json!({}))
        .await;
    assert_eq!(cancelled.status(), StatusCode::OK);
    wait_no_claims_but(&app, id, claimed).await;
    Entity::update_many()
        .col_expr(
            Column::LeaseExpiresAt,
            Expr::value(chrono::Utc::now().naive_utc() - chrono::TimeDelta::minutes(1)),
        )
        .filter(Column::Id.is_in(ids))
        .exec(&app.ctx.db)
        .await
        .unwrap();
    service::dispatch::sweeper::sweep(&app.ctx).await.unwrap();

    assert_eq!(receivers_in(&app, id, ReceiverStatus::Claimed).await, 0);
    assert_eq!(receivers_in(&app, id, ReceiverStatus::Pending).await, 0);
    let c = app.task(id).await.counts;
    assert_eq!(c.pending, 0, "nothing is left pending: {c:?}");
    assert_eq!(c.success + c.failed + c.skipped, c.target, "{c:?}");
}

/// A chunk's record locks the receivers it leases, then the run. A cancel meanwhile locks the run
/// and skips the pending receivers: it must not wait for the record's rows while it holds the
/// run, or the two deadlock (MariaDB's skip at repeatable read waited for every row of the run).
/// SQLite has one writer at a time and no row locks.
#[tokio::test]
async fn a_cancel_during_a_record_neither_waits_for_its_receivers_nor_deadlocks() {
    use sea_orm::{
        ColumnTrait, DbBackend, EntityTrait, QueryFilter, QuerySelect, TransactionTrait,
    };
    use std::sync::atomic::{AtomicBool, Ordering};

    let (_sim, app, agent) = ready("").await;
    if app.ctx.db.get_database_backend() == DbBackend::Sqlite {
        return;
    }
    let admin = app.admin_token().await;
    let (id, run) = paused_mid_run(&app, agent, 1).await;
    let (leased, _) = claim_as_a_dead_worker(&app, id).await;

    // What a record does first: lock the receivers it leases.
    let record = app.ctx.db.begin().await.unwrap();
    entity::message_receivers::Entity::find()
        .filter(entity::message_receivers::Column::Id.is_in(leased))
        .lock_exclusive()
        .all(&record)
        .await
        .unwrap();
    let cancelled = AtomicBool::new(false);
    let cancel = async {
        let response = app
            .post(&format!("/api/v1/tasks/{id}/cancel"), &admin, json!({}))
            .await;
        cancelled.store(true, Ordering::SeqCst);
        response
    };
    let record_counts = async {
        // Then it locks the run, once the cancel has either finished or waits for a row.
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while !cancelled.load(Ordering::SeqCst)
            && !a_lock_is_awaited(&app, "%UPDATE%message_receivers%").await
            && std::time::Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let locked = entity::message_task_runs::Entity::find_by_id(run)
            .lock_exclusive()
            .one(&record)
            .await;
        assert!(locked.is_ok(), "the record failed: {locked:?}");
        record.commit().await.unwrap();
    };
    let (cancelled, ()) = tokio::join!(cancel, record_counts);
    let cancelled: TaskView = answer(cancelled, StatusCode::OK).await;
    assert_eq!(cancelled.status, TaskStatus::Cancelled);
    assert_eq!(receivers_in(&app, id, ReceiverStatus::Pending).await, 0);
}

/// A worker died holding receivers while their task is being cancelled. The cancel locks the
/// run before it skips the pending receivers, and a sweep putting the expired leases back takes
/// the same lock: it waits, sees the run cancelled and skips them too. (It used to put them back
/// to pending whatever the run's status, and they stayed pending in a cancelled run for ever.)
/// SQLite runs one writer at a time, and the sweep's per-run transaction cannot interleave.
#[tokio::test]
async fn a_sweep_during_a_cancel_skips_a_dead_workers_receivers_too() {
    use entity::message_receivers::{Column, Entity};
    use sea_orm::{
        ColumnTrait, DbBackend, EntityTrait, QueryFilter, QuerySelect, TransactionTrait,
        sea_query::Expr,
    };
    use service::dispatch::finish::{CountChange, add_counts};

    let (_sim, app, agent) = ready("").await;
    if app.ctx.db.get_database_backend() == DbBackend::Sqlite {
        return;
    }
    let (id, run) = paused_mid_run(&app, agent, 1).await;
    // Its lease has not expired yet, so the running worker's own sweeps leave them alone.
    claim_as_a_dead_worker(&app, id).await;

    // What a cancel does, held open: lock the run, skip its pending receivers, count them, end
    // the run and the task.
    let cancel = app.ctx.db.begin().await.unwrap();
    entity::message_task_runs::Entity::find_by_id(run)
        .lock_exclusive()
        .one(&cancel)
        .await
        .unwrap();
    let skipped = Entity::update_many()
        .col_expr(Column::SendStatus, Expr::value(ReceiverStatus::Skipped))
        .col_expr(Column::SkipReason, Expr::value("cancelled"))
        .filter(Column::RunId.eq(run))
        .filter(Column::SendStatus.eq(ReceiverStatus::Pending))
        .exec(&cancel)
        .await
        .unwrap()
        .rows_affected;
    let change = CountChange {
        skipped: i32::try_from(skipped).unwrap(),
        ..CountChange::default()
    };
    let now = app.ctx.clock.now_db();
    add_counts(&cancel, id, run, change, now).await.unwrap();
    entity::message_task_runs::Entity::update_many()
        .col_expr(
            entity::message_task_runs::Column::Status,
            Expr::value(RunStatus::Cancelled),
        )
        .filter(entity::message_task_runs::Column::Id.eq(run))
        .exec(&cancel)
        .await
        .unwrap();
    entity::message_tasks::Entity::update_many()
        .col_expr(
            entity::message_tasks::Column::Status,
            Expr::value(TaskStatus::Cancelled),
        )
        .filter(entity::message_tasks::Column::Id.eq(id))
        .exec(&cancel)
        .await
        .unwrap();
    // A sweep two hours later, when the dead worker's leases have expired, starts before the
    // cancel commits. (Expiring them in the table would wait for the cancel on MariaDB, whose
    // skip locks every receiver of the run.)
    let mut ctx = app.ctx.clone();
    let later = chrono::Utc::now() + chrono::TimeDelta::hours(2);
    ctx.clock = std::sync::Arc::new(service::clock::ManualClock::at(later.timestamp()));
    let sweep = tokio::spawn(async move { service::dispatch::sweeper::sweep(&ctx).await });
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !sweep.is_finished()
        && !a_lock_is_awaited(&app, RUN_LOCK).await
        && std::time::Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    cancel.commit().await.unwrap();
    sweep.await.unwrap().unwrap();

    assert_eq!(receivers_in(&app, id, ReceiverStatus::Claimed).await, 0);
    assert_eq!(
        receivers_in(&app, id, ReceiverStatus::Pending).await,
        0,
        "the dead worker's receivers are not left pending in the cancelled run"
    );
    let c = app.task(id).await.counts;
    assert_eq!(c.pending, 0, "nothing is left pending: {c:?}");
    assert_eq!(c.success + c.failed + c.skipped, c.target, "{c:?}");
}

#[tokio::test]
async fn an_unreadable_stored_setting_pauses_the_task_and_names_it() {
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, sea_query::Expr};

    // The chunk in flight when a setting is spoiled sends on; the next one reads it. Short slot
    // waits keep that chunk short (at the default a send may wait 30 s for its slot).
    let (sim, app, agent) = ready("max_slot_wait_secs = 2").await;
    for (column, name, corrupt) in [
        (
            entity::message_tasks::Column::QuietHours,
            "quiet_hours",
            json!({ "start": "22:00", "end": "08:00", "timezone": "Mars/Olympus_Mons" }),
        ),
        (
            entity::message_tasks::Column::FrequencyCap,
            "frequency_cap",
            json!({ "max": 0, "window_hours": 24 }),
        ),
    ] {
        let task = slow_task(&app, agent, 6).await;
        let id = task.id;
        app.wait_sent(id, 1).await;
        entity::message_tasks::Entity::update_many()
            .col_expr(column, Expr::value(corrupt))
            .filter(entity::message_tasks::Column::Id.eq(id))
            .exec(&app.ctx.db)
            .await
            .unwrap();
        let paused = wait_status(&app, id, TaskStatus::Paused, 30).await;
        let reason = paused.pause_reason.as_deref().unwrap();
        assert!(reason.contains(name), "{reason}");
        // The other chain's chunk may still be recording what it sent before the pause.
        wait_no_claims(&app, id).await;
        let sent = app.task(id).await.counts.success;
        tokio::time::sleep(Duration::from_secs(3)).await;
        assert_eq!(
            app.task(id).await.counts.success,
            sent,
            "nothing more is sent"
        );
        assert!(sent < 240, "the broadcast stopped: {sent}");
    }
    drop(sim);
}
