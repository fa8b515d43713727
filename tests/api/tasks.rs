//! The broadcast engine end to end against the simulator: personalised broadcasts delivered once
//! each, counters matching the receivers, pause/resume/cancel, quiet hours, frequency caps, cron
//! runs, retries, auto-pause, idempotent creation, single messages, reports and progress.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{TestApp, TestSim, fields, problem};

/// A synced agent instance of a small sim and a running worker; small chunks so controls bite.
async fn ready(extra: &str) -> (TestSim, TestApp, i64) {
    let sim = TestSim::small();
    let mut app = TestApp::spawn_with(&format!(
        "[dispatch]\nchunk_size = 5\nconcurrency = 4\n{extra}"
    ))
    .await;
    let (agent, _) = app.register_sim(&sim, 60).await;
    app.start_worker();
    assert_eq!(app.sync(agent).await["status"], "succeeded");
    (sim, app, agent)
}

async fn create(app: &TestApp, body: Value) -> Value {
    let admin = app.admin_token().await;
    let response = app.post("/api/v1/tasks", &admin, body).await;
    assert_eq!(
        response.status(),
        StatusCode::CREATED,
        "{:?}",
        response.text().await
    );
    response.json().await.unwrap()
}

async fn wait_status(app: &TestApp, task: i64, status: &str, seconds: u64) -> Value {
    app.wait_for(&format!("/api/v1/tasks/{task}"), seconds, |t| {
        t["status"] == status
    })
    .await
}

async fn delivered(sim: &TestSim) -> Value {
    sim.control(Method::GET, "/stats", json!({}))
        .await
        .json::<Value>()
        .await
        .unwrap()["deliveries"]
        .clone()
}

/// The first `n` contacts synced from the agent, as the API lists them.
async fn first_contacts(app: &TestApp, agent: i64, n: usize) -> Vec<Value> {
    let admin = app.admin_token().await;
    let listed = app
        .get_json(
            &format!("/api/v1/contacts?instance_id={agent}&limit={n}"),
            &admin,
        )
        .await;
    listed["items"].as_array().unwrap().clone()
}

fn ids_of(contacts: &[Value]) -> Vec<i64> {
    contacts.iter().map(|c| c["id"].as_i64().unwrap()).collect()
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

fn assert_consistent(task: &Value) {
    let c = &task["counts"];
    let sum = c["success"].as_i64().unwrap()
        + c["failed"].as_i64().unwrap()
        + c["skipped"].as_i64().unwrap()
        + c["awaiting"].as_i64().unwrap()
        + c["pending"].as_i64().unwrap();
    assert_eq!(sum, c["target"].as_i64().unwrap(), "counters add up: {c}");
}

#[tokio::test]
async fn a_personalised_broadcast_reaches_every_receiver_exactly_once() {
    let (sim, app, agent) = ready("").await;
    let admin = app.admin_token().await;
    let template = app
        .post_json("/api/v1/templates", &admin, json!({
            "name": "双十一", "message_type": "text",
            "content": "{{ name }}您好，您的专属优惠码是 {{ coupon }}，{% if 'VIP' in tags %}VIP 再享九折{% endif %}",
            "variables": [{ "name": "coupon", "type": "string", "required": true }]
        }))
        .await;
    let task = create(&app, json!({
        "name": "全量群发", "task_type": "broadcast", "template_id": template["id"], "variables": { "coupon": "W11-2026" },
        "audience": { "filter": { "instance_ids": [agent] } }, "rate_per_minute": 6000
    }))
    .await;
    let id = task["id"].as_i64().unwrap();
    let done = wait_status(&app, id, "completed", 90).await;
    assert_consistent(&done);
    assert_dispatched_through_the_queue(&app).await;
    assert_accounts_interleaved(&app, id).await;
    assert_eq!(done["counts"]["target"], 240);
    assert_eq!(done["counts"]["success"], 240);
    assert_eq!(done["progress"], 100.0);
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
    let template = app
        .get_json(&format!("/api/v1/templates/{}", template["id"]), &admin)
        .await;
    assert_eq!(template["use_count"], 1);
    let sent = app
        .get_json(&format!("/api/v1/messages?task_id={id}&limit=200"), &admin)
        .await;
    assert_eq!(
        sent["items"].as_array().unwrap().len(),
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
    let failed = app
        .get_json(
            &format!("/api/v1/tasks/{id}/receivers?status=failed"),
            &admin,
        )
        .await;
    assert!(failed["items"].as_array().unwrap().is_empty());
}

#[tokio::test]
async fn pause_holds_within_a_chunk_resume_finishes_and_cancel_skips_the_rest() {
    let (sim, app, agent) = ready("").await;
    let admin = app.admin_token().await;
    let body = |name: &str| json!({ "name": name, "task_type": "broadcast", "content": "您好 {{ nickname }}", "audience": { "filter": { "instance_ids": [agent] } }, "rate_per_minute": 120 });
    let task = create(&app, body("慢速群发")).await;
    let id = task["id"].as_i64().unwrap();
    app.wait_for(&format!("/api/v1/tasks/{id}"), 30, |t| {
        t["counts"]["success"].as_i64().unwrap() >= 4
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
    let view = app.get_json(&format!("/api/v1/tasks/{id}"), &admin).await;
    assert_eq!(view["status"], "paused");
    assert_eq!(view["pause_reason"], "核对文案");
    assert_consistent(&view);
    let again = app
        .post(&format!("/api/v1/tasks/{id}/pause"), &admin, json!({}))
        .await;
    assert_eq!(
        problem(again, StatusCode::CONFLICT).await["code"],
        "conflict"
    );

    let cancelled: Value = app
        .post_json(&format!("/api/v1/tasks/{id}/cancel"), &admin, json!({}))
        .await;
    assert_eq!(cancelled["status"], "cancelled");
    let settled = app
        .wait_for(&format!("/api/v1/tasks/{id}"), 20, |t| {
            t["counts"]["pending"] == 0
        })
        .await;
    assert_consistent(&settled);
    assert!(
        settled["counts"]["skipped"].as_i64().unwrap() > 100,
        "the rest was skipped as cancelled: {}",
        settled["counts"]
    );
    let skipped = app
        .get_json(
            &format!("/api/v1/tasks/{id}/receivers?status=skipped&limit=1"),
            &admin,
        )
        .await;
    assert_eq!(skipped["items"][0]["skip_reason"], "cancelled");

    let second = create(&app, json!({ "name": "可恢复", "task_type": "broadcast", "content": "hello {{ wxid }}", "audience": { "filter": { "instance_ids": [agent] } }, "rate_per_minute": 6000 })).await;
    let sid = second["id"].as_i64().unwrap();
    app.post(&format!("/api/v1/tasks/{sid}/pause"), &admin, json!({}))
        .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let resumed = app
        .post(&format!("/api/v1/tasks/{sid}/resume"), &admin, json!({}))
        .await;
    assert_eq!(resumed.status(), StatusCode::OK);
    let done = wait_status(&app, sid, "completed", 60).await;
    assert_eq!(done["counts"]["success"], 240);
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
    let id = task["id"].as_i64().unwrap();
    let running = app
        .wait_for(&format!("/api/v1/tasks/{id}"), 20, |t| {
            t["counts"]["target"] == 240
        })
        .await;
    assert_eq!(running["status"], "running");
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        delivered(&sim).await["delivered"],
        0,
        "nothing is sent inside the quiet window"
    );
    let pending = app
        .get_json(
            &format!("/api/v1/tasks/{id}/receivers?status=pending&limit=1"),
            &admin,
        )
        .await;
    assert!(
        pending["items"][0]["next_attempt_at"].is_string(),
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
    let done = wait_status(&app, first["id"].as_i64().unwrap(), "completed", 30).await;
    assert_eq!(done["counts"]["success"], 3);
    let second = create(&app, body("第二次")).await;
    let done = wait_status(&app, second["id"].as_i64().unwrap(), "completed", 30).await;
    assert_eq!(done["counts"]["skipped"], 3);
    assert_consistent(&done);
    let skipped = app
        .get_json(
            &format!(
                "/api/v1/tasks/{}/receivers?status=skipped&limit=1",
                second["id"]
            ),
            &admin,
        )
        .await;
    assert_eq!(skipped["items"][0]["skip_reason"], "frequency_cap");
}

#[tokio::test]
async fn cron_tasks_fire_repeatedly_each_run_with_its_own_receivers() {
    let (_sim, app, agent) = ready("").await;
    let admin = app.admin_token().await;
    let ids = ids_of(&first_contacts(&app, agent, 2).await);
    let task = create(&app, json!({ "name": "每两秒", "task_type": "batch", "content": "定时 {{ nickname }}", "audience": { "contact_ids": ids }, "rate_per_minute": 6000, "cron": "*/2 * * * * *", "timezone": "Asia/Shanghai" })).await;
    let id = task["id"].as_i64().unwrap();
    assert!(task["next_fire_at"].is_string());
    let runs = app
        .wait_for(&format!("/api/v1/tasks/{id}/runs"), 30, |r| {
            r["items"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|x| x["status"] == "completed")
                .count()
                >= 2
        })
        .await;
    for run in runs["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|x| x["status"] == "completed")
    {
        assert_eq!(run["counts"]["target"], 2);
        assert_eq!(run["counts"]["success"], 2);
    }
    let cancelled: Value = app
        .post_json(&format!("/api/v1/tasks/{id}/cancel"), &admin, json!({}))
        .await;
    assert_eq!(cancelled["status"], "cancelled");
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
        json!({ "wxids": [items[0]["wxid"]] }),
    )
    .await;
    sim.control(Method::PUT, "/faults", json!({ "error_rate": 1.0 }))
        .await;
    let task = create(&app, json!({ "name": "重试", "task_type": "batch", "content": "hi", "audience": { "contact_ids": ids }, "rate_per_minute": 6000, "max_retry": 5 })).await;
    let id = task["id"].as_i64().unwrap();
    app.wait_for(
        &format!("/api/v1/tasks/{id}/receivers?status=pending"),
        20,
        |r| {
            r["items"]
                .as_array()
                .unwrap()
                .iter()
                .any(|x| x["retry_count"].as_i64().unwrap() >= 1)
        },
    )
    .await;
    sim.control(Method::PUT, "/faults", json!({})).await;
    let done = app
        .wait_for(&format!("/api/v1/tasks/{id}"), 60, |t| {
            t["status"] == "completed"
        })
        .await;
    assert_consistent(&done);
    assert_eq!(done["counts"]["success"], 3);
    assert_eq!(done["counts"]["failed"], 1);
    let failed = app
        .get_json(
            &format!("/api/v1/tasks/{id}/receivers?status=failed"),
            &admin,
        )
        .await;
    assert_eq!(failed["items"][0]["error_code"], "not_friend");
    sim.control(
        Method::POST,
        "/contacts/restore",
        json!({ "wxids": [items[0]["wxid"]] }),
    )
    .await;
    let retried: Value = app
        .post_json(
            &format!("/api/v1/tasks/{id}/retry-failed"),
            &admin,
            json!({}),
        )
        .await;
    assert_eq!(retried["status"], "running");
    let done = wait_status(&app, id, "completed", 30).await;
    assert_eq!(
        done["counts"]["success"], 4,
        "the retry run delivered the one that failed"
    );
    assert_consistent(&done);
}

#[tokio::test]
async fn a_failing_task_pauses_itself_with_the_reason() {
    let (sim, app, agent) = ready("").await;
    let items = first_contacts(&app, agent, 40).await;
    let wxids: Vec<Value> = items.iter().map(|c| c["wxid"].clone()).collect();
    sim.control(Method::POST, "/contacts/remove", json!({ "wxids": wxids }))
        .await;
    let ids = ids_of(&items);
    let task = create(&app, json!({ "name": "坏名单", "task_type": "batch", "content": "hi", "audience": { "contact_ids": ids }, "rate_per_minute": 6000, "auto_pause": { "window": 10, "failure_rate": 0.5 } })).await;
    let paused = wait_status(&app, task["id"].as_i64().unwrap(), "paused", 30).await;
    assert!(
        paused["pause_reason"]
            .as_str()
            .unwrap()
            .starts_with("auto-paused"),
        "{}",
        paused["pause_reason"]
    );
    assert!(
        paused["counts"]["pending"].as_i64().unwrap() > 0,
        "it stopped before the end"
    );
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
    let tasks = app
        .get_json("/api/v1/tasks?q=%E5%B9%82%E7%AD%89", &admin)
        .await;
    assert_eq!(
        tasks["items"].as_array().unwrap().len(),
        1,
        "exactly one task"
    );
    let other_body = app.request(Method::POST, "/api/v1/tasks", Some(&admin)).header("Idempotency-Key", "create-once-1").json(&json!({ "name": "different", "task_type": "broadcast", "content": "y", "audience": { "filter": {} } })).send().await.unwrap();
    assert_eq!(
        fields(&problem(other_body, StatusCode::CONFLICT).await),
        vec!["Idempotency-Key"]
    );
}

#[tokio::test]
async fn single_messages_are_sent_and_read_back_as_a_conversation() {
    let (sim, app, agent) = ready("").await;
    let admin = app.admin_token().await;
    let contact = first_contacts(&app, agent, 1).await.remove(0);
    let queued = app
        .post(
            "/api/v1/messages",
            &admin,
            json!({ "contact_id": contact["id"], "content": "{{ name }}，您的订单已发货" }),
        )
        .await;
    assert_eq!(queued.status(), StatusCode::CREATED);
    let task: Value = queued.json().await.unwrap();
    wait_status(&app, task["id"].as_i64().unwrap(), "completed", 30).await;
    let conversation = app
        .get_json(
            &format!("/api/v1/messages?contact_id={}", contact["id"]),
            &admin,
        )
        .await;
    let message = &conversation["items"][0];
    assert_eq!(message["direction"], "out");
    assert!(
        message["message_content"]
            .as_str()
            .unwrap()
            .ends_with("您的订单已发货")
    );
    assert_eq!(delivered(&sim).await["delivered"], 1);
    let both = app
        .post(
            "/api/v1/messages",
            &admin,
            json!({ "contact_id": 1, "group_id": 1, "content": "x" }),
        )
        .await;
    assert_eq!(
        fields(&problem(both, StatusCode::UNPROCESSABLE_ENTITY).await),
        vec!["contact_id"]
    );
}

#[tokio::test]
async fn templates_are_checked_and_previewed() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let undeclared = app.post("/api/v1/templates", &admin, json!({ "name": "x", "message_type": "text", "content": "{{ nickname }} {{ secret_sale }}" })).await;
    assert_eq!(
        fields(&problem(undeclared, StatusCode::UNPROCESSABLE_ENTITY).await),
        vec!["content"]
    );
    let broken = app
        .post(
            "/api/v1/templates",
            &admin,
            json!({ "name": "x", "message_type": "text", "content": "{{ nickname " }),
        )
        .await;
    assert_eq!(
        fields(&problem(broken, StatusCode::UNPROCESSABLE_ENTITY).await),
        vec!["content"]
    );
    let link_without_url = app.post("/api/v1/templates", &admin, json!({ "name": "x", "message_type": "link", "content": "", "payload": { "title": "t" } })).await;
    assert_eq!(
        fields(&problem(link_without_url, StatusCode::UNPROCESSABLE_ENTITY).await),
        vec!["payload.url"]
    );
    let created = app
        .post_json("/api/v1/templates", &admin, json!({ "name": "生日", "category": "关怀", "message_type": "text", "content": "{{ name }}，生日快乐！送您 {{ points }} 积分", "variables": [{ "name": "points", "type": "number", "default": 100 }] }))
        .await;
    assert_eq!(created["preview_content"], "王伟，生日快乐！送您 100 积分");
    let preview: Value = app
        .post_json(
            &format!("/api/v1/templates/{}/preview", created["id"]),
            &admin,
            json!({ "sample": { "name": "小李", "points": 500 } }),
        )
        .await;
    assert_eq!(preview["content"], "小李，生日快乐！送您 500 积分");
    let wrong_type = app.post("/api/v1/tasks", &admin, json!({ "name": "x", "task_type": "batch", "template_id": created["id"], "variables": { "points": "many" }, "audience": { "contact_ids": [1] } })).await;
    assert_eq!(
        fields(&problem(wrong_type, StatusCode::UNPROCESSABLE_ENTITY).await),
        vec!["variables.points"]
    );
}

#[tokio::test]
async fn progress_streams_as_server_sent_events() {
    let (_sim, app, agent) = ready("").await;
    let admin = app.admin_token().await;
    let task = create(&app, json!({ "name": "进度", "task_type": "broadcast", "content": "x", "audience": { "filter": { "instance_ids": [agent] } }, "rate_per_minute": 6000 })).await;
    let id = task["id"].as_i64().unwrap();
    let response = app
        .get(&format!("/api/v1/tasks/{id}/progress"), &admin)
        .await;
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let text = tokio::time::timeout(Duration::from_secs(90), response.text())
        .await
        .unwrap()
        .unwrap();
    let last = text.lines().rfind(|l| l.starts_with("data: ")).unwrap();
    let view: Value = serde_json::from_str(&last["data: ".len()..]).unwrap();
    assert_eq!(
        view["status"], "completed",
        "the stream ends with the finished task"
    );
    assert!(text.matches("event: progress").count() >= 2);
}

/// Whether `response`'s body ends within `secs` seconds (frames keep arriving meanwhile).
async fn ends_within(response: &mut reqwest::Response, secs: u64) -> bool {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        match tokio::time::timeout_at(deadline, response.chunk()).await {
            Err(_) => return false,
            Ok(Ok(Some(_))) => {}
            Ok(_) => return true,
        }
    }
}

/// A task that keeps running (one send a minute) and a `tasks:read` user holding the maximum
/// of progress streams on it: `(sim, app, progress path, token, streams)`.
async fn streams_at_the_cap() -> (TestSim, TestApp, String, String, Vec<reqwest::Response>) {
    let (sim, app, agent) = ready("").await;
    let task = create(&app, json!({ "name": "慢速", "task_type": "broadcast", "content": "x", "audience": { "filter": { "instance_ids": [agent] } }, "rate_per_minute": 1 })).await;
    let id = task["id"].as_i64().unwrap();
    app.wait_for(&format!("/api/v1/tasks/{id}"), 30, |t| {
        t["status"] == "running"
    })
    .await;
    let (_, token) = app.user_with(&["tasks:read"]).await;
    let path = format!("/api/v1/tasks/{id}/progress");
    let mut streams = Vec::new();
    for _ in 0..8 {
        let stream = app.get(&path, &token).await;
        assert_eq!(stream.status(), StatusCode::OK);
        streams.push(stream);
    }
    (sim, app, path, token, streams)
}

#[tokio::test]
async fn progress_streams_end_with_the_session_and_are_capped_per_user() {
    let (_sim, app, path, token, mut streams) = streams_at_the_cap().await;
    let admin = app.admin_token().await;
    problem(app.get(&path, &token).await, StatusCode::TOO_MANY_REQUESTS).await;
    assert_eq!(
        app.get(&path, &admin).await.status(),
        StatusCode::OK,
        "another user has slots of their own"
    );
    assert!(
        !ends_within(&mut streams[0], 3).await,
        "the task is still running"
    );

    let out = app.post("/api/v1/auth/logout", &token, json!({})).await;
    assert!(out.status().is_success());
    for stream in &mut streams {
        assert!(
            ends_within(stream, 10).await,
            "a signed-out session stops streaming"
        );
    }
}

/// With Redis the stream cap holds across `wework api` processes (a slot freed on one is
/// usable on another at once); without it each process applies the cap on its own.
#[tokio::test]
async fn the_stream_cap_spans_api_processes_when_redis_is_configured() {
    let (_sim, app, path, token, mut streams) = streams_at_the_cap().await;
    let config = crate::helpers::processes::ConfigFile::of(&app);
    let (mut other, base) = crate::helpers::processes::spawn_api(&config).await;
    let from_other = || {
        app.client
            .get(format!("{base}{path}"))
            .bearer_auth(&token)
            .send()
    };
    let ninth = from_other().await.unwrap();
    if std::env::var("WEWORK_TEST_REDIS_URL").is_ok_and(|u| !u.is_empty()) {
        assert_eq!(
            ninth.status(),
            StatusCode::TOO_MANY_REQUESTS,
            "the cap spans processes"
        );
        drop(streams.pop());
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let again = from_other().await.unwrap();
            if again.status() == StatusCode::OK {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "a closed stream gives its slot back"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    } else {
        assert_eq!(
            ninth.status(),
            StatusCode::OK,
            "without Redis each process has its own cap"
        );
    }
    crate::helpers::processes::kill(&mut other).await;
}

/// A stored setting that no longer reads (a bad time zone in quiet hours, a cap out of bounds)
/// pauses the task and says which, instead of quietly switching the setting off and sending.
#[tokio::test]
async fn an_unreadable_stored_setting_pauses_the_task_and_names_it() {
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, sea_query::Expr};

    let (sim, app, agent) = ready("").await;
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
        let task = create(&app, json!({ "name": "慢速", "task_type": "broadcast", "content": "x", "audience": { "filter": { "instance_ids": [agent] } }, "rate_per_minute": 6 })).await;
        let id = task["id"].as_i64().unwrap();
        app.wait_sent(id, 1).await;
        entity::message_tasks::Entity::update_many()
            .col_expr(column, Expr::value(corrupt))
            .filter(entity::message_tasks::Column::Id.eq(id))
            .exec(&app.ctx.db)
            .await
            .unwrap();
        let paused = wait_status(&app, id, "paused", 30).await;
        let reason = paused["pause_reason"].as_str().unwrap();
        assert!(reason.contains(name), "{reason}");
        let sent = paused["counts"]["success"].as_i64().unwrap();
        tokio::time::sleep(Duration::from_secs(3)).await;
        assert_eq!(
            app.task(id).await["counts"]["success"],
            sent,
            "nothing more is sent"
        );
        assert!(sent < 240, "the broadcast stopped: {sent}");
    }
    drop(sim);
}

/// The sim's customer mass messages, oldest first.
async fn mass_messages(sim: &TestSim) -> Vec<Value> {
    sim.control(Method::GET, "/mass", json!({}))
        .await
        .json()
        .await
        .unwrap()
}

#[tokio::test]
async fn customer_mass_messages_wait_for_members_then_settle_from_wecom_results() {
    let sim = TestSim::small();
    let mut app = TestApp::spawn_with(
        "[dispatch]\nchunk_size = 5\nmass_chunk_size = 50\nconfirm_poll_secs = 1\n",
    )
    .await;
    let (_, wecom) = app.register_sim(&sim, 60).await;
    app.start_worker();
    assert_eq!(app.sync(wecom).await["status"], "succeeded");
    let admin = app.admin_token().await;
    let body = |content: &str| json!({ "name": "新品上市", "task_type": "broadcast", "channel": "customer_mass", "content": content, "audience": { "filter": { "instance_ids": [wecom] } }, "rate_per_minute": 6000 });

    let personal = app
        .post("/api/v1/tasks", &admin, body("{{ nickname }}，新品上市"))
        .await;
    assert_eq!(
        fields(&problem(personal, StatusCode::UNPROCESSABLE_ENTITY).await),
        vec!["content"]
    );

    let task = create(&app, body("新品上市，到店出示本消息享八折")).await;
    let id = task["id"].as_i64().unwrap();
    let waiting = wait_status(&app, id, "awaiting_confirmation", 60).await;
    assert_eq!(waiting["counts"]["awaiting"], 240);
    assert_eq!(waiting["counts"]["success"], 0);
    assert_consistent(&waiting);

    let mass = mass_messages(&sim).await;
    assert!(
        (2..=8).contains(&mass.len()),
        "one mass message per chunk and member, not per customer: {}",
        mass.len()
    );
    let targets: usize = mass
        .iter()
        .map(|m| m["targets"].as_array().unwrap().len())
        .sum();
    assert_eq!(targets, 240);

    for _ in 0..3 {
        let reminded = app
            .post_json(&format!("/api/v1/tasks/{id}/remind"), &admin, json!({}))
            .await;
        assert_eq!(reminded["reminded"], mass.len(), "{reminded}");
    }
    let limited = app
        .post_json(&format!("/api/v1/tasks/{id}/remind"), &admin, json!({}))
        .await;
    assert_eq!(limited["reminded"], 0);
    assert_eq!(limited["limited"], mass.len(), "3 reminders per 24 hours");

    // A customer leaves before the member confirms; every member but the last confirms.
    let gone = mass[0]["targets"][0].clone();
    sim.control(Method::POST, "/contacts/remove", json!({ "wxids": [gone] }))
        .await;
    let (last, confirmed) = mass.split_last().unwrap();
    for m in confirmed {
        let msgid = m["msgid"].as_str().unwrap();
        sim.control(Method::POST, &format!("/mass/{msgid}/confirm"), json!({}))
            .await;
    }
    let confirmed_targets: usize = confirmed
        .iter()
        .map(|m| m["targets"].as_array().unwrap().len())
        .sum();
    let last_targets = last["targets"].as_array().unwrap().len();
    let settled = app
        .wait_for(&format!("/api/v1/tasks/{id}"), 30, |t| {
            // Every read while members confirm adds up: one confirmation moves a receiver
            // from awaiting to success in one step, never through "pending".
            assert_eq!(t["counts"]["pending"], 0, "{t}");
            t["counts"]["awaiting"] == last_targets
        })
        .await;
    assert_eq!(settled["status"], "awaiting_confirmation");
    assert_eq!(settled["counts"]["success"], confirmed_targets - 1);
    assert_eq!(settled["counts"]["failed"], 1);
    assert_consistent(&settled);
    let failed = app
        .get_json(
            &format!("/api/v1/tasks/{id}/receivers?status=failed"),
            &admin,
        )
        .await;
    assert_eq!(failed["items"][0]["receiver_wxid"], gone);
    assert_eq!(failed["items"][0]["error_code"], "not_friend");

    // Cancelling withdraws what the last member never confirmed.
    let cancelled = app
        .post_json(&format!("/api/v1/tasks/{id}/cancel"), &admin, json!({}))
        .await;
    assert_eq!(cancelled["status"], "cancelled");
    assert_eq!(cancelled["counts"]["awaiting"], 0);
    assert_eq!(cancelled["counts"]["skipped"], last_targets);
    assert_consistent(&cancelled);
    let last_now = mass_messages(&sim)
        .await
        .into_iter()
        .find(|m| m["msgid"] == last["msgid"])
        .unwrap();
    assert_eq!(last_now["status"], "cancelled");
    assert_eq!(
        delivered(&sim).await["delivered"],
        confirmed_targets - 1,
        "only confirmed messages reach customers"
    );
}
