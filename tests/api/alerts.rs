//! Alerts end to end: a heartbeat-missing rule raises one alert when the instance goes down,
//! notifies a WeCom group robot (a second simulator) and a signed webhook, and resolves itself
//! when the instance returns; rules are validated and alerts acknowledged by hand.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use entity::states::{AlertStatus, InstanceStatus};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use service::{
    alerts::{AlertView, rules::RuleView},
    instances::InstanceView,
    pagination::Page,
};

use crate::helpers::{TestApp, TestSim, fields, problem};

/// One call a webhook received: its headers and body.
pub type Call = (Vec<(String, String)>, String);

/// A webhook receiver that keeps what it got.
pub struct Hook {
    pub url: String,
    got: Arc<Mutex<Vec<Call>>>,
}

impl Hook {
    pub fn start() -> Self {
        let got: Arc<Mutex<Vec<Call>>> = Arc::default();
        let sink = got.clone();
        let server = HttpServer::new(move || {
            let sink = sink.clone();
            App::new().default_service(web::to(move |req: HttpRequest, body: String| {
                let sink = sink.clone();
                async move {
                    let headers = req
                        .headers()
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_owned()))
                        .collect();
                    sink.lock().unwrap().push((headers, body));
                    HttpResponse::Ok().finish()
                }
            }))
        })
        .workers(1)
        .bind("127.0.0.1:0")
        .unwrap();
        let port = server.addrs()[0].port();
        tokio::spawn(server.run());
        Self {
            url: format!("http://127.0.0.1:{port}/alerts"),
            got,
        }
    }

    pub fn received(&self) -> Vec<Call> {
        self.got.lock().unwrap().clone()
    }
}

async fn robot_messages(robot: &TestSim) -> Vec<Value> {
    robot
        .control(Method::GET, "/deliveries?to=alerts", json!({}))
        .await
        .json::<Vec<Value>>()
        .await
        .unwrap()
}

async fn alerts(app: &TestApp, query: &str) -> Vec<AlertView> {
    let admin = app.admin_token().await;
    app.get_as::<Page<AlertView>>(&format!("/api/v1/alerts?{query}"), &admin)
        .await
        .items
}

#[tokio::test]
async fn a_missing_heartbeat_raises_one_alert_notifies_and_resolves_itself() {
    let sim = TestSim::small();
    let robot = TestSim::small();
    let hook = Hook::start();
    let mut app = TestApp::spawn_with("[worker]\nalert_interval_secs = 1\n").await;
    let (agent, _) = app.register_sim(&sim, 1).await;
    app.start_worker();
    app.wait_for_as(
        &format!("/api/v1/instances/{agent}"),
        30,
        |i: &InstanceView| i.status == InstanceStatus::Online,
    )
    .await;
    let admin = app.admin_token().await;
    let rule = app
        .post_json(
            "/api/v1/alert-rules",
            &admin,
            json!({
                "name": "心跳丢失", "rule_type": "heartbeat_missing", "threshold": 2,
                "instance_id": agent, "level": "CRITICAL", "cooldown_seconds": 0,
                "channels": [
                    { "kind": "wecom_robot", "url": format!("{}/cgi-bin/webhook/send?key=alerts", robot.base) },
                    { "kind": "webhook", "url": hook.url, "secret": "hook-secret" }
                ]
            }),
        )
        .await;
    assert!(
        !rule.to_string().contains("key=alerts"),
        "channel URLs are not shown back: {rule}"
    );
    let rule: RuleView = serde_json::from_value(rule).unwrap();
    assert!(!rule.channels[0].has_secret, "{rule:?}");
    assert!(rule.channels[1].has_secret);

    sim.control(Method::PUT, "/faults", json!({ "offline": true }))
        .await;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while robot_messages(&robot).await.is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "the robot was not notified: {:?} {:?}",
            alerts(&app, "").await,
            robot
                .control(Method::GET, "/deliveries", json!({}))
                .await
                .text()
                .await
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let active = alerts(&app, &format!("rule_id={}", rule.id)).await;
    assert_eq!(active.len(), 1);
    assert_eq!(active[0].status, AlertStatus::Active);
    assert_eq!(active[0].instance_id, Some(agent));
    // Several more evaluations: still one alert, one notification.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(alerts(&app, &format!("rule_id={}", rule.id)).await.len(), 1);
    assert_eq!(robot_messages(&robot).await.len(), 1);
    let first = robot_messages(&robot).await[0]["content"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(first.contains("CRITICAL"), "{first}");

    sim.control(Method::PUT, "/faults", json!({ "offline": false }))
        .await;
    let resolved = app
        .wait_for_as(
            &format!("/api/v1/alerts/{}", active[0].id),
            30,
            |a: &AlertView| a.status == AlertStatus::Resolved && a.notification_sent,
        )
        .await;
    assert!(
        resolved.resolved_by.is_none(),
        "resolved by itself: {resolved:?}"
    );
    assert_eq!(robot_messages(&robot).await.len(), 2);

    let calls = hook.received();
    assert_eq!(calls.len(), 2, "raised and resolved");
    for (headers, body) in &calls {
        let header = |name: &str| {
            headers
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
                .unwrap_or_default()
        };
        let expected = service::alerts::notify::sign(
            "hook-secret",
            &header("x-wework-timestamp"),
            body.as_bytes(),
        );
        assert_eq!(header("x-wework-signature"), format!("sha256={expected}"));
    }
    let events: Vec<String> = calls
        .iter()
        .map(|(_, body)| {
            serde_json::from_str::<Value>(body).unwrap()["event"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(events, vec!["alert.raised", "alert.resolved"]);
}

#[tokio::test]
async fn rules_are_validated_and_alerts_acknowledged_by_hand() {
    let sim = TestSim::small();
    let mut app = TestApp::spawn_with("[worker]\nalert_interval_secs = 1\n").await;
    let (agent, _) = app.register_sim(&sim, 1).await;
    let admin = app.admin_token().await;
    let bad = app
        .post(
            "/api/v1/alert-rules",
            &admin,
            json!({ "name": "", "rule_type": "metric_threshold", "comparator": "!=", "window_seconds": 5,
                    "channels": [{ "kind": "sms", "url": "http://x" }, { "kind": "webhook", "url": "http://10.1.2.3/hook" }] }),
        )
        .await;
    let body = problem(bad, StatusCode::UNPROCESSABLE_ENTITY).await;
    for field in [
        "name",
        "metric_name",
        "comparator",
        "threshold",
        "window_seconds",
        "channels[0].kind",
        "channels[1].url",
    ] {
        assert!(
            fields(&body).contains(&field.to_owned()),
            "{field} in {body}"
        );
    }

    let rule: RuleView = app
        .post_as(
            "/api/v1/alert-rules",
            &admin,
            json!({ "name": "latency", "rule_type": "metric_threshold", "metric_name": "heartbeat_latency_ms",
                    "comparator": ">=", "threshold": 0, "window_seconds": 60, "instance_id": agent }),
        )
        .await;
    app.start_worker();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let alert = loop {
        if let Some(a) = alerts(&app, "status=ACTIVE").await.first() {
            break a.clone();
        }
        assert!(std::time::Instant::now() < deadline, "no latency alert");
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    assert_eq!(alert.rule_id, Some(rule.id));
    let path = format!("/api/v1/alerts/{}/acknowledge", alert.id);
    let acked: AlertView = app
        .post_as(&path, &admin, json!({ "comment": "看一下" }))
        .await;
    assert_eq!(acked.status, AlertStatus::Acknowledged);
    assert_eq!(acked.acknowledged_comment.as_deref(), Some("看一下"));
    problem(
        app.post(&path, &admin, json!({})).await,
        StatusCode::CONFLICT,
    )
    .await;
    let resolved: AlertView = app
        .post_as(
            &format!("/api/v1/alerts/{}/resolve", alert.id),
            &admin,
            json!({}),
        )
        .await;
    assert_eq!(resolved.status, AlertStatus::Resolved);
    assert!(resolved.resolved_by.is_some());
    let deleted = app
        .request(
            Method::DELETE,
            &format!("/api/v1/alert-rules/{}", rule.id),
            Some(&admin),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(
        deleted.status(),
        StatusCode::NO_CONTENT,
        "{:?}",
        deleted.text().await
    );
}
