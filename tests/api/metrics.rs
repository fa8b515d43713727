//! Metric points reach InfluxDB-compatible stores — VictoriaMetrics through the InfluxDB 2 write
//! API (the `influxdb2` crate), InfluxDB 1.x through `/write` — and none is lost while the store
//! is down: they are spooled and replayed once it is back.

use std::time::Duration;

use entity::{instance_monitors, states::TaskStatus};
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
use serde_json::{Value, json};
use service::{
    instances::accounts::AccountView, monitoring::Series, pagination::Page, tasks::TaskView,
};

use crate::{
    helpers::{TestApp, TestSim},
    telemetry_servers::{Influx1, VictoriaMetrics, spool_dir},
};

fn batches_in(dir: &str) -> usize {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter(|e| e.path().extension().is_some_and(|x| x == "batch"))
                .count()
        })
        .unwrap_or(0)
}

async fn latency_samples_in_sql(app: &TestApp, instance: i64) -> usize {
    let count = instance_monitors::Entity::find()
        .filter(instance_monitors::Column::InstanceId.eq(instance))
        .filter(instance_monitors::Column::MetricName.eq("heartbeat_latency_ms"))
        .filter(instance_monitors::Column::BucketSeconds.eq(0))
        .count(&app.ctx.db)
        .await
        .unwrap();
    usize::try_from(count).unwrap()
}

#[tokio::test]
async fn instance_health_reaches_influxdb_2_and_no_point_is_lost_while_it_is_down() {
    let mut vm = VictoriaMetrics::start().await;
    let spool = spool_dir();
    let sim = TestSim::small();
    let mut app = TestApp::spawn_with(&format!(
        "[influxdb]\nurl = \"{}\"\napi = \"v2\"\norg = \"ops\"\nbucket = \"wework\"\ntoken = \"test-token\"\nflush_interval_ms = 100\nspool_dir = \"{spool}\"\n",
        vm.url
    ))
    .await;
    let (agent, _) = app.register_sim(&sim, 1).await;
    app.start_worker();
    let selector = format!("instance_health_latency_ms{{instance=\"{agent}\",kind=\"agent\"}}");
    let first = vm.samples(&selector, 2, 30).await;
    assert!(first.len() >= 2, "latency points arrive: {first:?}");
    assert!(first.iter().all(|(_, ms)| *ms >= 0.0));

    vm.stop().await;
    let outage_started = chrono::Utc::now().timestamp_millis();
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert!(
        batches_in(&spool) > 0,
        "points are spooled while the store is down"
    );
    let outage_ended = chrono::Utc::now().timestamp_millis();
    vm.restart().await;
    app.stop_worker().await;
    assert!(
        app.ctx.telemetry.flush().await,
        "the spool drains once the store is back"
    );
    assert_eq!(batches_in(&spool), 0);

    let heartbeats = latency_samples_in_sql(&app, agent).await;
    let all = vm.samples(&selector, heartbeats, 30).await;
    assert_eq!(all.len(), heartbeats, "one point per heartbeat, none lost");
    let during = all
        .iter()
        .filter(|(t, _)| (outage_started..outage_ended).contains(t))
        .count();
    assert!(during >= 2, "heartbeats of the outage are there: {all:?}");
    let online = vm
        .samples(
            &format!("instance_health_online{{instance=\"{agent}\"}}"),
            heartbeats,
            10,
        )
        .await;
    assert!(online.iter().all(|(_, v)| *v == 1.0));
}

#[tokio::test]
async fn send_counters_per_instance_and_account_add_up_to_the_task() {
    let vm = VictoriaMetrics::start().await;
    let sim = TestSim::small();
    let mut app = TestApp::spawn_with(&format!(
        "[influxdb]\nurl = \"{}\"\nflush_interval_ms = 100\nspool_dir = \"{}\"\n[dispatch]\nchunk_size = 20\n",
        vm.url,
        spool_dir()
    ))
    .await;
    let agent = app.with_synced_agent(&sim).await;
    let admin = app.admin_token().await;
    let task: TaskView = app
        .post_as(
            "/api/v1/tasks",
            &admin,
            json!({
                "name": "metrics", "task_type": "broadcast", "content": "{{ nickname }}，周末见",
                "audience": { "filter": { "instance_ids": [agent] } }, "rate_per_minute": 6000
            }),
        )
        .await;
    let id = task.id;
    let done = crate::tasks::wait_status(&app, id, TaskStatus::Completed, 90).await;
    assert!(app.ctx.telemetry.flush().await);
    let selector = format!("dispatch_sends_sent{{task=\"{id}\",instance=\"{agent}\"}}");
    let target = i64::from(done.counts.success);
    assert_eq!(target, 240);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let sent: f64 = vm
            .samples(&selector, 1, 10)
            .await
            .iter()
            .map(|(_, v)| v)
            .sum();
        if sent as i64 == target || std::time::Instant::now() > deadline {
            assert_eq!(sent as i64, target, "per-chunk counters add up to the task");
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // The embedded default has the counters too, per instance, in SQL.
    let (_, total) = sent_series(&app, &format!("instance_id={agent}")).await;
    assert_eq!(total, target);
    // And per sending account: the accounts' series add up to the instance's.
    let listed: Page<AccountView> = app
        .get_as(
            &format!("/api/v1/accounts?instance_id={agent}"),
            &app.admin_token().await,
        )
        .await;
    let mut per_account = Vec::new();
    for account in &listed.items {
        let (series, sent) = sent_series(&app, &format!("account_id={}", account.id)).await;
        assert_eq!(series.account_id, Some(account.id));
        per_account.push(sent);
    }
    assert_eq!(per_account.len(), 2);
    assert!(per_account.iter().all(|n| *n > 0), "{per_account:?}");
    assert_eq!(per_account.iter().sum::<i64>(), target, "{per_account:?}");
    let accounts = reqwest::Client::new()
        .get(format!("{}/api/v1/label/account/values", vm.url))
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    assert_eq!(
        accounts["data"].as_array().map(Vec::len),
        Some(2),
        "one series per sending account: {accounts}"
    );
}

/// The SQL series of sent messages for `filter` (`instance_id=…` or `account_id=…`), with its
/// total over every step.
async fn sent_series(app: &TestApp, filter: &str) -> (Series, i64) {
    let series: Series = app
        .get_as(
            &format!("/api/v1/monitoring/series?metric=dispatch_sends_sent&{filter}&step=60"),
            &app.admin_token().await,
        )
        .await;
    let total: f64 = series.points.iter().map(|p| p.sum).sum();
    (series, total as i64)
}

#[tokio::test]
async fn metrics_reach_influxdb_1() {
    let influx = Influx1::start("wework_metrics").await;
    let sim = TestSim::small();
    let mut app = TestApp::spawn_with(&format!(
        "[influxdb]\nurl = \"{}\"\napi = \"v1\"\ndatabase = \"wework_metrics\"\nflush_interval_ms = 100\nspool_dir = \"{}\"\n",
        influx.url,
        spool_dir()
    ))
    .await;
    let (agent, _) = app.register_sim(&sim, 1).await;
    app.start_worker();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let answer = influx
            .query(
                "wework_metrics",
                &format!(
                    "SELECT latency_ms, online FROM instance_health WHERE instance = '{agent}'"
                ),
            )
            .await;
        let rows = answer["results"][0]["series"][0]["values"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if rows.len() >= 2 {
            assert!(
                rows.iter()
                    .all(|row| row[1].as_i64().is_some() && row[2] == true)
            );
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no instance_health points in InfluxDB 1.x: {answer}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

#[tokio::test]
async fn replies_and_opt_outs_reach_the_metric_store_per_task() {
    let vm = VictoriaMetrics::start().await;
    let sim = TestSim::small();
    let mut app = TestApp::spawn_with(&format!(
        "[influxdb]\nurl = \"{}\"\nflush_interval_ms = 100\nspool_dir = \"{}\"\n",
        vm.url,
        spool_dir()
    ))
    .await;
    let agent = app.with_synced_agent(&sim).await;
    let admin = app.admin_token().await;
    let people = crate::tasks::first_contacts(&app, agent, 3).await;
    let ids: Vec<i64> = people.iter().map(|c| c.id).collect();
    let task: TaskView = app
        .post_as(
            "/api/v1/tasks",
            &admin,
            json!({ "name": "回复指标", "task_type": "broadcast", "content": "新品上市", "audience": { "contact_ids": ids }, "rate_per_minute": 6000 }),
        )
        .await;
    crate::tasks::wait_status(&app, task.id, TaskStatus::Completed, 60).await;
    // Two replies from one contact (one reply counts as the first), an opt-out from another.
    crate::opt_out::inbound(&sim, &app, agent, &people[0], "有优惠吗").await;
    crate::opt_out::inbound(&sim, &app, agent, &people[0], "还有吗").await;
    crate::opt_out::inbound(&sim, &app, agent, &people[1], "TD").await;
    app.wait_for_as(
        &format!("/api/v1/tasks/{}/outcomes", task.id),
        20,
        |o: &service::tasks::outcomes::TaskOutcomes| o.replies == 3,
    )
    .await;
    // The point of a reply is made right after its row is written: read until all three have
    // been shipped (or the deadline says one was lost).
    let total = |field: &'static str| {
        let selector = format!("broadcast_replies_{field}{{task=\"{}\"}}", task.id);
        let vm = &vm;
        async move {
            vm.samples(&selector, 1, 30)
                .await
                .iter()
                .map(|(_, v)| *v as i64)
                .sum::<i64>()
        }
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        assert!(app.ctx.telemetry.flush().await);
        let got = (
            total("replies").await,
            total("first_replies").await,
            total("opt_outs").await,
        );
        if got == (3, 2, 1) || std::time::Instant::now() > deadline {
            assert_eq!(got, (3, 2, 1), "replies, first replies, opt-outs");
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
