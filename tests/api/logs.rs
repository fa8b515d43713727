//! Logs: access lines and the worker's warnings are searchable through `/api/v1/logs` — in SQL
//! by default, in Elasticsearch (here osmem-server) when configured — and none is lost while
//! Elasticsearch is down.

use std::{process::Stdio, time::Duration};

use entity::states::InstanceStatus;
use reqwest::{Method, StatusCode};
use serde_json::json;
use service::{
    instances::InstanceView,
    logs::LogPage,
    telemetry::{LogDoc, LogKind},
};
use tokio::process::Command;

use crate::{
    helpers::{TestApp, TestSim, answer, fields, problem},
    telemetry_servers::{Osmem, spool_dir},
};

/// Searches until `done` holds for the answer (shipping is asynchronous; a search refused
/// while the store comes back is tried again).
async fn search_until(
    app: &TestApp,
    query: &str,
    seconds: u64,
    done: impl Fn(&LogPage) -> bool,
) -> LogPage {
    let admin = app.admin_token().await;
    let deadline = std::time::Instant::now() + Duration::from_secs(seconds);
    let path = format!("/api/v1/logs?{query}");
    loop {
        app.ctx.telemetry.flush().await;
        if let Some(store) = &app.ctx.telemetry.elastic {
            store.refresh().await.ok();
        }
        let response = app.get(&path, &admin).await;
        let shown = if response.status() == StatusCode::OK {
            let answer: LogPage = answer(response, StatusCode::OK).await;
            if done(&answer) {
                return answer;
            }
            format!("{answer:?}")
        } else {
            format!("{} {:?}", response.status(), response.text().await)
        };
        assert!(
            std::time::Instant::now() < deadline,
            "no match for {query}: {shown}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

fn found(page: &LogPage) -> bool {
    !page.items.is_empty()
}

/// Waits until the instance shows `status`.
async fn wait_instance(app: &TestApp, id: i64, status: InstanceStatus) {
    app.wait_for_as(
        &format!("/api/v1/instances/{id}"),
        30,
        |i: &InstanceView| i.status == status,
    )
    .await;
}

#[tokio::test]
async fn logs_are_searchable_in_sql_by_default() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    assert_eq!(
        app.get("/api/v1/users", &admin).await.status(),
        StatusCode::OK
    );
    let mut warning = LogDoc::new(
        LogKind::System,
        "WARN",
        "worker",
        "实例连接超时 instance.id=42".into(),
    );
    warning.instance_id = Some(42);
    app.ctx.telemetry.log(warning);

    let hit = search_until(
        &app,
        "q=%E8%BF%9E%E6%8E%A5%E8%B6%85%E6%97%B6&instance_id=42",
        10,
        found,
    )
    .await;
    assert_eq!(hit.source, "sql");
    assert_eq!(hit.items[0].message, "实例连接超时 instance.id=42");
    assert_eq!(hit.items[0].kind, LogKind::System);

    // A caller with no token, and a user agent that JSON has to escape (PostgreSQL and MySQL
    // take a batch's access rows as one JSON document).
    let odd_agent = r#"probe "agent" \ {1} 'x'"#;
    let anonymous = app
        .client
        .get(format!("{}/api/v1/users", app.address))
        .header("user-agent", odd_agent)
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    let by_agent = |page: &LogPage| {
        page.items
            .iter()
            .any(|l| l.user_agent.as_deref() == Some(odd_agent))
    };
    let access = search_until(&app, "kind=access&q=/api/v1/users", 10, by_agent).await;
    let line = access.items.iter().find(|l| l.status == Some(200)).unwrap();
    assert_eq!(line.method.as_deref(), Some("GET"));
    assert!(line.user_id.is_some(), "{line:?}");
    assert!(line.trace_id.as_ref().is_some_and(|t| !t.is_empty()));
    let refused = access
        .items
        .iter()
        .find(|l| l.user_agent.as_deref() == Some(odd_agent))
        .unwrap();
    assert_eq!(refused.status, Some(401));
    assert_eq!(refused.user_id, None);
    assert_eq!(refused.path.as_deref(), Some("/api/v1/users"));
    let age = chrono::Utc::now() - refused.timestamp;
    assert!(
        age.num_seconds().abs() < 60,
        "logged at {}",
        refused.timestamp
    );

    let audit = search_until(&app, "kind=audit", 10, found).await;
    assert!(audit.items.iter().all(|l| l.kind == LogKind::Audit));

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
    wait_instance(&app, agent, InstanceStatus::Online).await;

    sim.control(
        Method::PUT,
        "/faults",
        json!({ "offline": true, "offline_message": "实例连接超时" }),
    )
    .await;
    let query = format!("q=%E8%BF%9E%E6%8E%A5%E8%B6%85%E6%97%B6&instance_id={agent}");
    let hit = search_until(&app, &query, 30, found).await;
    assert_eq!(hit.source, "elasticsearch");
    let line = &hit.items[0];
    assert_eq!(line.service, "worker");
    assert_eq!(line.level, "WARN");
    assert!(line.message.contains("实例连接超时"), "{line:?}");

    // The audit log is copied too: the instance registration, found by its operation.
    let audit = search_until(&app, "kind=audit&q=instance.create", 30, found).await;
    assert_eq!(audit.items[0].kind, LogKind::Audit);
    assert!(audit.items[0].audit_id.is_some());

    // Elasticsearch goes away; the instance recovers and fails again meanwhile.
    es.stop().await;
    let admin = app.admin_token().await;
    let down = app.get("/api/v1/logs?q=x", &admin).await;
    problem(down, StatusCode::SERVICE_UNAVAILABLE).await;
    sim.control(Method::PUT, "/faults", json!({ "offline": false }))
        .await;
    wait_instance(&app, agent, InstanceStatus::Online).await;
    sim.control(
        Method::PUT,
        "/faults",
        json!({ "offline": true, "offline_message": "网关响应超时" }),
    )
    .await;
    wait_instance(&app, agent, InstanceStatus::Offline).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    es.restart().await;

    // osmem keeps nothing across restarts: what it has now came from the spools.
    let query =
        format!("q=%E7%BD%91%E5%85%B3%E5%93%8D%E5%BA%94%E8%B6%85%E6%97%B6&instance_id={agent}");
    let replayed = search_until(&app, &query, 40, found).await;
    assert!(replayed.items[0].message.contains("网关响应超时"));
    let access = search_until(&app, "kind=access&q=/api/v1/logs", 20, found).await;
    assert!(
        access.items.iter().any(|l| l.status == Some(503)),
        "the refused search was logged too: {access:?}"
    );
}
