//! Secrets in error texts. WeCom carries `corpsecret` and `access_token` in query strings and a
//! transport error quotes the URL it failed on. Instances are pointed at four broken
//! destinations — a closed port (connect), a listener that never answers (timeout), a name that
//! no longer resolves (DNS) and a plain-HTTP server spoken to over HTTPS (TLS) — and a worker
//! process checks them and raises alerts to a webhook. The corp secret must appear in no API
//! answer, no line the worker logs, no stored row and no notification sent out.

use std::{process::Stdio, sync::Arc, time::Duration};

use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, sea_query::Expr};
use serde_json::{Value, json};
use tokio::{io::AsyncReadExt, net::TcpListener, process::Command, sync::Mutex};

use crate::{
    alerts::Hook,
    helpers::{TestApp, processes::ConfigFile},
};

const SECRET: &str = "corp-SECRET-7f3a9c1e";

/// A TCP listener that accepts connections and never answers (they time out).
async fn silent_listener() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    port
}

/// A port nothing listens on (connection refused).
fn closed_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test]
async fn no_secret_escapes_through_connect_timeout_dns_or_tls_failures() {
    let hook = Hook::start();
    let app = TestApp::spawn_with(
        "[worker]\nalert_interval_secs = 1\n[outbound]\nconnect_timeout_secs = 1\nrequest_timeout_secs = 2\n[log]\nlevel = \"info\"",
    )
    .await;
    let admin = app.admin_token().await;
    let hook_port = hook
        .url
        .split(':')
        .nth(2)
        .unwrap()
        .split('/')
        .next()
        .unwrap();
    let destinations = [
        (
            "connect",
            format!("http://127.0.0.1:{}/cgi-bin", closed_port()),
        ),
        (
            "timeout",
            format!("http://127.0.0.1:{}/cgi-bin", silent_listener().await),
        ),
        ("tls", format!("https://127.0.0.1:{hook_port}/cgi-bin")),
        ("dns", format!("http://127.0.0.1:{}/cgi-bin", closed_port())),
    ];
    let mut ids = Vec::new();
    for (name, url) in &destinations {
        let created = app
            .post_json(
                "/api/v1/instances",
                &admin,
                json!({ "name": name, "kind": "wecom", "api_url": url, "heartbeat_interval": 1,
                        "config": { "corp_id": "wwleaky", "corp_secret": SECRET } }),
            )
            .await;
        ids.push(
            created["id"]
                .as_i64()
                .unwrap_or_else(|| panic!("{created}")),
        );
    }
    // The name resolved when it was saved and stopped resolving later.
    entity::wework_instances::Entity::update_many()
        .col_expr(
            entity::wework_instances::Column::ApiUrl,
            Expr::value("http://wework-gone.invalid/cgi-bin"),
        )
        .filter(entity::wework_instances::Column::Id.eq(ids[3]))
        .exec(&app.ctx.db)
        .await
        .unwrap();
    let rule = app
        .post_json(
            "/api/v1/alert-rules",
            &admin,
            json!({ "name": "instances down", "rule_type": "heartbeat_missing", "threshold": 1,
                    "level": "CRITICAL", "cooldown_seconds": 0,
                    "channels": [{ "kind": "webhook", "url": hook.url }] }),
        )
        .await;
    assert!(rule["id"].is_i64(), "{rule}");

    let config = ConfigFile::of(&app);
    let mut worker = Command::new(env!("CARGO_BIN_EXE_wework"))
        .arg("worker")
        .env("WEWORK_CONFIG", &config.0)
        .env("WEWORK__LOG__LEVEL", "debug")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let output = Arc::new(Mutex::new(String::new()));
    for mut pipe in [
        Box::new(worker.stdout.take().unwrap()) as Box<dyn tokio::io::AsyncRead + Unpin + Send>,
        Box::new(worker.stderr.take().unwrap()),
    ] {
        let output = output.clone();
        tokio::spawn(async move {
            let mut buf = [0_u8; 8192];
            while let Ok(n) = pipe.read(&mut buf).await {
                if n == 0 {
                    break;
                }
                output
                    .lock()
                    .await
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
    }

    let mut errors = Vec::new();
    for (id, (name, _)) in ids.iter().zip(&destinations) {
        let failing = app
            .wait_for(&format!("/api/v1/instances/{id}"), 60, |i| {
                i["error_message"].is_string() && i["missed_heartbeats"].as_i64() >= Some(2)
            })
            .await;
        errors.push(format!("{name}: {}", failing["error_message"]));
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while hook.received().len() < 4 {
        assert!(
            std::time::Instant::now() < deadline,
            "alerts sent: {:?}",
            hook.received()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    worker.start_kill().unwrap();
    worker.wait().await.unwrap();

    // The failures are there, reported with the URL's shape but not its values.
    let errors = errors.join("\n");
    assert!(errors.contains("corpsecret=***"), "{errors}");
    let mut seen = vec![("errors", errors)];
    for path in [
        "/api/v1/instances?limit=50".to_owned(),
        "/api/v1/alerts?limit=50".to_owned(),
        "/api/v1/logs?limit=500".to_owned(),
        "/api/v1/audit-logs?limit=200".to_owned(),
    ] {
        let response = app.get(&path, &admin).await;
        seen.push(("api", format!("{path}: {}", response.text().await.unwrap())));
    }
    for (_, body) in hook.received() {
        seen.push(("notification", body));
    }
    seen.push(("worker output", output.lock().await.clone()));
    let db = &app.ctx.db;
    let rows: Vec<Vec<Value>> = vec![
        entity::wework_instances::Entity::find()
            .into_json()
            .all(db)
            .await
            .unwrap(),
        entity::alert_records::Entity::find()
            .into_json()
            .all(db)
            .await
            .unwrap(),
        entity::instance_monitors::Entity::find()
            .into_json()
            .all(db)
            .await
            .unwrap(),
        entity::error_logs::Entity::find()
            .into_json()
            .all(db)
            .await
            .unwrap(),
        entity::system_logs::Entity::find()
            .into_json()
            .all(db)
            .await
            .unwrap(),
        entity::audit_logs::Entity::find()
            .into_json()
            .all(db)
            .await
            .unwrap(),
    ];
    seen.push(("stored rows", Value::from(rows.concat()).to_string()));
    for (place, text) in &seen {
        assert!(
            !text.contains(SECRET),
            "the corp secret leaked into {place}: {text}"
        );
    }
    let logged = output.lock().await.clone();
    assert!(
        logged.contains("corpsecret=***"),
        "the worker logged the failures, redacted: {logged}"
    );
}
