//! Every place a run is created, started, resumed or re-fed, raced by concurrent callers: a run
//! appears to workers whole or not at all, each firing has one run, and a task always follows
//! its current run. Deliveries are counted at the simulator, not only in the task's counters.

use std::{
    collections::HashSet,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use entity::{
    message_task_runs, message_tasks,
    states::{RunStatus, TaskStatus},
};
use reqwest::{Method, StatusCode};
use sea_orm::{ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter};
use serde_json::{Value, json};
use service::{Context, tasks::TaskView};

use crate::{
    helpers::{TestApp, TestSim, answer},
    tasks::wait_status,
};

async fn runs_of(app: &TestApp, task: i64) -> Vec<message_task_runs::Model> {
    message_task_runs::Entity::find()
        .filter(message_task_runs::Column::TaskId.eq(task))
        .all(&app.ctx.db)
        .await
        .unwrap()
}

/// Expanders and sweepers polling as fast as they can beside the real worker, until dropped;
/// records every run an expander claimed.
struct Racers {
    stop: Arc<AtomicBool>,
    expanded: Arc<Mutex<HashSet<i64>>>,
}

impl Racers {
    fn start(ctx: &Context) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let expanded = Arc::new(Mutex::new(HashSet::new()));
        for n in 0..2 {
            let (ctx, stop, expanded) = (ctx.clone(), stop.clone(), expanded.clone());
            tokio::spawn(async move {
                let name = format!("racing-expander-{n}");
                while !stop.load(Ordering::Relaxed) {
                    if let Ok(Some(run)) = service::tasks::expand::claim(&ctx, &name).await {
                        expanded.lock().unwrap().insert(run.id);
                        service::tasks::expand::expand(&ctx, &run).await.ok();
                    }
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
            });
        }
        let (ctx, done) = (ctx.clone(), stop.clone());
        tokio::spawn(async move {
            while !done.load(Ordering::Relaxed) {
                service::dispatch::sweeper::sweep(&ctx).await.ok();
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        });
        Self { stop, expanded }
    }

    fn expanded(&self) -> HashSet<i64> {
        self.expanded.lock().unwrap().clone()
    }
}

impl Drop for Racers {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

#[tokio::test]
async fn retry_failed_reaches_exactly_the_failed_receivers_while_expanders_race() {
    const PER_ACCOUNT: usize = 600;
    let sim = TestSim::start(sim::SimConfig {
        accounts: 2,
        contacts_per_account: PER_ACCOUNT,
        groups_per_account: 0,
        members_per_group: 0,
        ..Default::default()
    });
    let mut app = TestApp::spawn_with(
        "[dispatch]\nchunk_size = 100\nconcurrency = 16\nrate_limits = false\n",
    )
    .await;
    let agent = app.with_synced_agent(&sim).await;
    let admin = app.admin_token().await;
    // Every second contact has removed its account: the agent refuses them (`not_friend`).
    let refused: Vec<String> = (0..2)
        .flat_map(|a| {
            (1..PER_ACCOUNT)
                .step_by(2)
                .map(move |i| format!("wm_42_{a}_{i}"))
        })
        .collect();
    sim.control(
        Method::POST,
        "/contacts/remove",
        json!({ "wxids": refused }),
    )
    .await;
    // Expanders and sweepers race the worker from the first run on.
    let racers = Racers::start(&app.ctx);
    let task: TaskView = app
        .post_as("/api/v1/tasks", &admin, json!({ "name": "重试竞争", "task_type": "broadcast", "content": "{{ nickname }}，会员日", "audience": { "filter": { "instance_ids": [agent] } } }))
        .await;
    let id = task.id;
    let first = wait_status(&app, id, TaskStatus::Completed, 120).await;
    assert_eq!(first.counts.success, 600, "{first:?}");
    assert_eq!(first.counts.failed, 600, "{first:?}");
    sim.control(
        Method::POST,
        "/contacts/restore",
        json!({ "wxids": refused }),
    )
    .await;

    let path = format!("/api/v1/tasks/{id}/retry-failed");
    let calls = (0..4).map(|_| app.post(&path, &admin, json!({})));
    let statuses: Vec<StatusCode> = futures_util::future::join_all(calls)
        .await
        .iter()
        .map(|r| r.status())
        .collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == StatusCode::OK).count(),
        1,
        "one retry run however many ask at once: {statuses:?}"
    );
    assert!(
        statuses
            .iter()
            .all(|s| *s == StatusCode::OK || *s == StatusCode::CONFLICT),
        "{statuses:?}"
    );
    let done = wait_status(&app, id, TaskStatus::Completed, 120).await;
    let runs = runs_of(&app, id).await;
    assert_eq!(runs.len(), 2);
    let retry = runs.iter().max_by_key(|r| r.id).unwrap();
    assert!(
        !racers.expanded().contains(&retry.id),
        "an expander claimed the retry run"
    );
    drop(racers);
    assert_eq!(
        retry.target_count, 600,
        "the retry run holds the failed receivers"
    );
    assert_eq!(retry.success_count, 600);
    let c = &done.counts;
    assert_eq!(c.target, 1800, "{c:?}");
    assert_eq!(c.success, 1200, "{c:?}");
    assert_eq!(
        c.failed, 600,
        "the first run's failures stay on record: {c:?}"
    );
    let deliveries = sim.deliveries().await;
    assert_eq!(
        deliveries["delivered"], 1200,
        "every contact got the message once: {deliveries}"
    );
    assert_eq!(deliveries["recipients"], 1200, "{deliveries}");
}

/// A task whose schedule is due, without a worker: the test is the only scheduler.
async fn due_task(app: &TestApp, body: Value) -> i64 {
    let admin = app.admin_token().await;
    let task: TaskView = app.post_as("/api/v1/tasks", &admin, body).await;
    let id = task.id;
    let past = app.ctx.clock.now_db() - chrono::TimeDelta::minutes(1);
    message_tasks::Entity::update(message_tasks::ActiveModel {
        id: Set(id),
        scheduled_time: Set(Some(past)),
        next_fire_at: Set(task.cron.is_some().then_some(past)),
        ..Default::default()
    })
    .exec(&app.ctx.db)
    .await
    .unwrap();
    id
}

async fn concurrent_ticks(app: &TestApp, n: usize) -> Vec<i64> {
    let ticks = (0..n).map(|_| {
        let ctx = app.ctx.clone();
        tokio::spawn(async move { service::tasks::schedule::tick(&ctx).await })
    });
    futures_util::future::join_all(ticks)
        .await
        .into_iter()
        .flat_map(|t| t.unwrap().unwrap())
        .collect()
}

#[tokio::test]
async fn concurrent_schedulers_start_each_firing_once() {
    let app = TestApp::spawn().await;
    let one_shot = due_task(&app, json!({ "name": "定时", "task_type": "broadcast", "content": "x", "audience": { "filter": { "q": "无人" } }, "scheduled_time": "2099-01-01T00:00:00Z" })).await;
    let cron = due_task(&app, json!({ "name": "每天", "task_type": "broadcast", "content": "x", "audience": { "filter": { "q": "无人" } }, "cron": "0 9 * * *", "timezone": "Asia/Shanghai" })).await;
    let created = concurrent_ticks(&app, 8).await;
    assert_eq!(created.len(), 2, "one run per firing: {created:?}");
    for id in [one_shot, cron] {
        let runs = runs_of(&app, id).await;
        assert_eq!(runs.len(), 1, "task {id}");
        let task = message_tasks::Entity::find_by_id(id)
            .one(&app.ctx.db)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(task.current_run_id, Some(runs[0].id));
        assert!(
            matches!(task.status.as_str(), "running" | "completed" | "scheduled"),
            "{}",
            task.status
        );
    }
    let cron_task = message_tasks::Entity::find_by_id(cron)
        .one(&app.ctx.db)
        .await
        .unwrap()
        .unwrap();
    assert!(
        cron_task.next_fire_at > Some(app.ctx.clock.now_db()),
        "the next firing is ahead"
    );
    assert!(
        concurrent_ticks(&app, 8).await.is_empty(),
        "nothing more is due"
    );
}

#[tokio::test]
async fn a_task_paused_as_its_run_ended_resumes_to_the_run_outcome() {
    let sim = TestSim::small();
    let mut app = TestApp::spawn_with("[dispatch]\nchunk_size = 5\nconcurrency = 4\n").await;
    let agent = app.with_synced_agent(&sim).await;
    let admin = app.admin_token().await;
    let ids: Vec<i64> = crate::tasks::first_contacts(&app, agent, 3)
        .await
        .iter()
        .map(|c| c.id)
        .collect();
    let task: TaskView = app
        .post_as("/api/v1/tasks", &admin, json!({ "name": "暂停竞态", "task_type": "batch", "content": "hi", "audience": { "contact_ids": ids }, "rate_per_minute": 6000 }))
        .await;
    let id = task.id;
    wait_status(&app, id, TaskStatus::Completed, 30).await;
    // The pause that landed after the last chunk claimed its receivers: the run completed but
    // left the task paused (a run only settles a task that is still running).
    message_tasks::Entity::update(message_tasks::ActiveModel {
        id: Set(id),
        status: Set(TaskStatus::Paused),
        completed_at: Set(None),
        ..Default::default()
    })
    .exec(&app.ctx.db)
    .await
    .unwrap();
    let path = format!("/api/v1/tasks/{id}/resume");
    let resumes = (0..4).map(|_| app.post(&path, &admin, json!({})));
    let responses = futures_util::future::join_all(resumes).await;
    let ok: Vec<&reqwest::Response> = responses
        .iter()
        .filter(|r| r.status() == StatusCode::OK)
        .collect();
    assert_eq!(ok.len(), 1, "one resume wins, the others conflict");
    // The worker's scheduler keeps ticking: the task must not start its finished firing again.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let view = app.task(id).await;
    assert_eq!(view.status, TaskStatus::Completed, "{view:?}");
    assert_eq!(runs_of(&app, id).await.len(), 1);
    assert_eq!(sim.deliveries().await["delivered"], 3);
}

#[tokio::test]
async fn a_task_cancelled_while_its_audience_expands_settles_every_receiver() {
    let sim = TestSim::small();
    let mut app = TestApp::spawn().await;
    let agent = app.with_synced_agent(&sim).await;
    // The test is the scheduler and the expander from here on.
    app.stop_worker().await;
    let admin = app.admin_token().await;
    let task: TaskView = app
        .post_as("/api/v1/tasks", &admin, json!({ "name": "展开中取消", "task_type": "broadcast", "content": "x", "audience": { "filter": { "instance_ids": [agent] } } }))
        .await;
    let id = task.id;
    assert_eq!(concurrent_ticks(&app, 2).await.len(), 1);
    let run = service::tasks::expand::claim(&app.ctx, "expander")
        .await
        .unwrap()
        .unwrap();
    let cancelled = app
        .post(&format!("/api/v1/tasks/{id}/cancel"), &admin, json!({}))
        .await;
    let cancelled: TaskView = answer(cancelled, StatusCode::OK).await;
    assert_eq!(cancelled.status, TaskStatus::Cancelled);
    // The expander, unaware, writes the audience and finishes.
    service::tasks::expand::expand(&app.ctx, &run)
        .await
        .unwrap();
    let view = app.task(id).await;
    assert_eq!(view.status, TaskStatus::Cancelled);
    let c = &view.counts;
    assert_eq!(c.target, 240, "{c:?}");
    assert_eq!(
        c.skipped, 240,
        "every receiver is counted as skipped: {c:?}"
    );
    assert_eq!(c.pending, 0, "{c:?}");
    let runs = runs_of(&app, id).await;
    assert_eq!(runs[0].status, RunStatus::Cancelled);
    assert_eq!(sim.deliveries().await["delivered"], 0);
}

/// The scheduler sleeps until the next task is due (`next_due`: the earliest one-shot time or
/// cron firing of a scheduled task), and creating a task wakes it at once: in the process that
/// created it, and in every other process through Redis when it is configured.
#[tokio::test]
async fn the_scheduler_knows_the_next_due_time_and_a_new_task_wakes_it() {
    use service::tasks::schedule::next_due;
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let task = |name: &str, when: Value| {
        let mut body = json!({ "name": name, "task_type": "broadcast", "content": "x", "audience": { "filter": { "q": "无人" } } });
        body.as_object_mut()
            .unwrap()
            .extend(when.as_object().unwrap().clone());
        app.post_as::<TaskView>("/api/v1/tasks", &admin, body)
    };
    assert_eq!(next_due(&app.ctx).await.unwrap(), None, "nothing scheduled");
    let far = chrono::NaiveDate::from_ymd_opt(2099, 1, 1)
        .unwrap()
        .and_hms_opt(0, 0, 0)
        .unwrap();
    task("远期", json!({ "scheduled_time": "2099-01-01T00:00:00Z" })).await;
    assert_eq!(next_due(&app.ctx).await.unwrap(), Some(far));
    let daily = task(
        "每天",
        json!({ "cron": "0 9 * * *", "timezone": "Asia/Shanghai" }),
    )
    .await;
    let firing = message_tasks::Entity::find_by_id(daily.id)
        .one(&app.ctx.db)
        .await
        .unwrap()
        .unwrap()
        .next_fire_at;
    assert!(firing.is_some_and(|f| f < far));
    assert_eq!(
        next_due(&app.ctx).await.unwrap(),
        firing,
        "the cron firing comes first"
    );
    let sooner = task(
        "暂停的",
        json!({ "scheduled_time": "2026-01-01T00:00:00Z" }),
    )
    .await;
    let paused = app
        .post(
            &format!("/api/v1/tasks/{}/pause", sooner.id),
            &admin,
            json!({}),
        )
        .await;
    assert_eq!(paused.status(), StatusCode::OK);
    assert_eq!(
        next_due(&app.ctx).await.unwrap(),
        firing,
        "a paused task is not due"
    );

    // The waiter is this process's scheduler, or with Redis another process's.
    let redis = std::env::var("WEWORK_TEST_REDIS_URL").is_ok_and(|u| !u.is_empty());
    let waiter_ctx = if redis {
        let settings = service::config::Settings::from_toml(&app.config).unwrap();
        Context::connect(settings).await.unwrap()
    } else {
        app.ctx.clone()
    };
    // Drain a wake-up left by the creates above.
    waiter_ctx
        .schedule_signal
        .wait(&waiter_ctx, Duration::from_millis(10))
        .await;
    let woken = tokio::spawn({
        let ctx = waiter_ctx.clone();
        async move {
            ctx.schedule_signal
                .wait(&ctx, Duration::from_secs(600))
                .await
        }
    });
    // Until the other process has subscribed, an announcement may pass it by: create tasks
    // until it wakes, far sooner than its ten-minute bound.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let mut created = 0;
    while !woken.is_finished() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the scheduler was not woken by {created} new tasks"
        );
        task("现在发", json!({})).await;
        created += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        next_due(&app.ctx).await.unwrap() <= Some(app.ctx.clock.now_db()),
        "a task to send now is due now"
    );
}

/// A task due that no pass can start (its stored cron expression no longer parses) does not make
/// the scheduler spin: it waits its regular beat, while a task it did start is followed at once.
#[tokio::test]
async fn a_due_task_that_cannot_start_leaves_the_scheduler_on_its_beat() {
    use worker::jobs::schedule::{LOOK_AT_LEAST_EVERY, run};
    let app = TestApp::spawn().await;
    let stuck = due_task(&app, json!({ "name": "坏的", "task_type": "broadcast", "content": "x", "audience": { "filter": { "q": "无人" } }, "cron": "0 9 * * *" })).await;
    message_tasks::Entity::update(message_tasks::ActiveModel {
        id: Set(stuck),
        cron_expression: Set(Some("not a cron".into())),
        ..Default::default()
    })
    .exec(&app.ctx.db)
    .await
    .unwrap();
    assert_eq!(run(&app.ctx).await.unwrap(), LOOK_AT_LEAST_EVERY);
    assert!(runs_of(&app, stuck).await.is_empty());
    let startable = due_task(&app, json!({ "name": "好的", "task_type": "broadcast", "content": "x", "audience": { "filter": { "q": "无人" } }, "scheduled_time": "2099-01-01T00:00:00Z" })).await;
    let wait = run(&app.ctx).await.unwrap();
    assert_eq!(
        runs_of(&app, startable).await.len(),
        1,
        "the startable task started"
    );
    assert!(
        wait < LOOK_AT_LEAST_EVERY,
        "a pass that started something looks again at once for the rest: {wait:?}"
    );
}
