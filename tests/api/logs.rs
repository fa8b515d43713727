//! Logs: access lines and the worker's warnings are searchable through `/api/v1/logs` — in SQL
//! by default, in Elasticsearch (here osmem-server) when configured — and none is lost while
//! Elasticsearch is down.

use std::{process::Stdio, time::Duration};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use service::telemetry::{LogDoc, LogKind};
use tokio::process::Command;

use crate::{
    helpers::{TestApp, TestSim, fields, problem},
    telemetry_servers::{Osmem, spool_dir},
};

/// Searches until `done` holds for the answer (shipping is asynchronous).
async fn search_until(
    app: &TestApp,
    query: &str,
    seconds: u64,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let admin = app.admin_token().await;
    let deadline = std::time::Instant::now() + Duration::from_secs(seconds);
    loop {
        app.ctx.telemetry.flush().await;
        if let Some(store) = &app.ctx.telemetry.elastic {
            store.refresh().await.ok();
        }
        let answer = app.get_json(&format!("/api/v1/logs?{query}"), &admin).await;
        if done(&answer) {
            return answer;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no match for {query}: {answer}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

fn items(answer: &Value) -> Vec<Value> {
    answer["items"].as_array().cloned().unwrap_or_default()
}

#[tokio::test]
async fn logs_are_searchable_in_sql_by_default() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    app.get_json("/api/v1/users", &admin).await;
    let mut warning = LogDoc::new(
        LogKind::System,
        "WARN",
        "worker",
        "实例连接超时 instance.id=42".into(),
    );
    warning.instance_id = Some(42);
    app.ctx.telemetry.log(warning);

    let found = search_until(
        &app,
        "q=%E8%BF%9E%E6%8E%A5%E8%B6%85%E6%97%B6&instance_id=42",
        10,
        |a| !items(a).is_empty(),
    )
    .await;
    assert_eq!(found["source"], "sql");
    assert_eq!(items(&found)[0]["message"], "实例连接超时 instance.id=42");
    assert_eq!(items(&found)[0]["kind"], "system");

    let access = search_until(&app, "kind=access&q=/api/v1/users", 10, |a| {
        !items(a).is_empty()
    })
    .await;
    let line = &items(&access)[0];
    assert_eq!(line["method"], "GET");
    assert_eq!(line["status"], 200);
    assert!(line["trace_id"].as_str().is_some_and(|t| !t.is_empty()));

    let audit = search_until(&app, "kind=audit", 10, |a| !items(a).is_empty()).await;
    assert!(items(&audit).iter().all(|l| l["kind"] == "audit"));

    let bad = app.get("/api/v1/logs?kind=debug&limit=0", &admin).await;
    let body = problem(bad, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert_eq!(fields(&body), vec!["kind", "limit"]);
}

#[tokio::test]
async fn worker_errors_reach_elasticsearch_and_survive_its_outage() {
    let mut es = Osmem::start().await;
    let sim = TestSim::small();
    let app = TestApp::spawn_with(&format!(
        "[elasticsearch]\nurl = \"{}\"\nindex_prefix = \"wework-t{}\"\nflush_interval_ms = 100\nspool_dir = \"{}\"\n",
        es.url,
        &uuid::Uuid::new_v4().simple().to_string()[..8],
        spool_dir()
    ))
    .await;
    let (agent, _) = app.register_sim(&sim, 1).await;
    let config =
        crate::helpers::tests_dir().join(format!("logs-{}.toml", uuid::Uuid::new_v4().simple()));
    std::fs::write(&config, &app.config).unwrap();
    // A separate `wework worker` process: its warnings are what gets shipped.
    let _worker = Command::new(env!("CARGO_BIN_EXE_wework"))
        .arg("worker")
        .env("WEWORK_CONFIG", &config)
        .env("WEWORK__LOG__LEVEL", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    app.wait_for(&format!("/api/v1/instances/{agent}"), 30, |i| {
        i["status"] == "online"
    })
    .await;

    sim.control(
        Method::PUT,
        "/faults",
        json!({ "offline": true, "offline_message": "实例连接超时" }),
    )
    .await;
    let query = format!("q=%E8%BF%9E%E6%8E%A5%E8%B6%85%E6%97%B6&instance_id={agent}");
    let found = search_until(&app, &query, 30, |a| !items(a).is_empty()).await;
    assert_eq!(found["source"], "elasticsearch");
    let line = &items(&found)[0];
    assert_eq!(line["service"], "worker");
    assert_eq!(line["level"], "WARN");
    assert!(
        line["message"].as_str().unwrap().contains("实例连接超时"),
        "{line}"
    );

    // The audit log is copied too: the instance registration, found by its operation.
    let audit = search_until(&app, "kind=audit&q=instance.create", 30, |a| {
        !items(a).is_empty()
    })
    .await;
    assert_eq!(items(&audit)[0]["kind"], "audit");
    assert!(items(&audit)[0]["audit_id"].as_i64().is_some());

    // Elasticsearch goes away; the instance recovers and fails again meanwhile.
    es.stop().await;
    let admin = app.admin_token().await;
    let down = app.get("/api/v1/logs?q=x", &admin).await;
    problem(down, StatusCode::SERVICE_UNAVAILABLE).await;
    sim.control(Method::PUT, "/faults", json!({ "offline": false }))
        .await;
    app.wait_for(&format!("/api/v1/instances/{agent}"), 30, |i| {
        i["status"] == "online"
    })
    .await;
    sim.control(
        Method::PUT,
        "/faults",
        json!({ "offline": true, "offline_message": "网关响应超时" }),
    )
    .await;
    app.wait_for(&format!("/api/v1/instances/{agent}"), 30, |i| {
        i["status"] == "offline"
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    es.restart().await;

    // osmem keeps nothing across restarts: what it has now came from the spools.
    let query =
        format!("q=%E7%BD%91%E5%85%B3%E5%93%8D%E5%BA%94%E8%B6%85%E6%97%B6&instance_id={agent}");
    let replayed = search_until(&app, &query, 40, |a| !items(a).is_empty()).await;
    assert!(
        items(&replayed)[0]["message"]
            .as_str()
            .unwrap()
            .contains("网关响应超时")
    );
    let access = search_until(&app, "kind=access&q=/api/v1/logs", 20, |a| {
        !items(a).is_empty()
    })
    .await;
    assert!(
        items(&access).iter().any(|l| l["status"] == 503),
        "the refused search was logged too: {access}"
    );
}
