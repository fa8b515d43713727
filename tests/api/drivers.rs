//! The drivers against the simulator: sends with idempotency keys, rate limits and permanent
//! failures classified, WeCom channels; master-key rotation keeps every secret readable.

use reqwest::Method;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use serde_json::{Value, json};
use service::crypto::sealer::Sealer;
use service::drivers::{Channel, DriverError, OutboundMessage};
use service::{alerts::rules::RuleView, instances::InstanceView};

use crate::helpers::{TestApp, TestSim};

fn message(channel: Channel, account: &str, to: &str, key: &str, text: &str) -> OutboundMessage {
    OutboundMessage {
        account_wxid: account.into(),
        to: to.into(),
        to_group: to.starts_with("wr_"),
        channel,
        msgtype: entity::states::MessageType::Text,
        payload: json!({ "content": text }),
        idempotency_key: key.into(),
    }
}

async fn driver(app: &TestApp, id: i64) -> Box<dyn service::drivers::InstanceDriver> {
    let instance = service::instances::find_live(&app.ctx.db, id)
        .await
        .unwrap();
    service::drivers::for_instance(&app.ctx, &instance)
        .await
        .unwrap()
}

async fn stats(sim: &TestSim) -> Value {
    sim.control(Method::GET, "/stats", json!({}))
        .await
        .json::<Value>()
        .await
        .unwrap()["deliveries"]
        .clone()
}

/// An agent instance named `name` at `api_url`, created through the API, and its driver.
async fn agent_at(
    app: &TestApp,
    name: &str,
    api_url: String,
) -> Box<dyn service::drivers::InstanceDriver> {
    let admin = app.admin_token().await;
    let created: InstanceView = app
        .post_as(
            "/api/v1/instances",
            &admin,
            json!({ "name": name, "kind": "agent", "api_url": api_url, "config": { "agent_secret": "agent-secret-for-tests" } }),
        )
        .await;
    driver(app, created.id).await
}

/// A redirect to another host is not followed: the signed request (its `webhook-signature` and
/// body) must not reach a host the instance was not configured with. Within one origin it is.
#[tokio::test]
async fn redirects_to_another_host_are_not_followed() {
    use actix_web::{App, HttpResponse, HttpServer, web};
    let elsewhere = crate::alerts::Hook::start();
    let target = elsewhere.url.clone();
    let hits = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = hits.clone();
    let server = HttpServer::new(move || {
        let (target, counted) = (target.clone(), counted.clone());
        App::new()
            .route(
                "/away/{tail:.*}",
                web::to(move || {
                    let target = target.clone();
                    async move {
                        HttpResponse::TemporaryRedirect()
                            .insert_header(("location", target))
                            .finish()
                    }
                }),
            )
            .route(
                "/here/{tail:.*}",
                web::to(|| async {
                    HttpResponse::TemporaryRedirect()
                        .insert_header(("location", "/landed"))
                        .finish()
                }),
            )
            .route(
                "/landed",
                web::to(move || {
                    counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    async { HttpResponse::ServiceUnavailable().finish() }
                }),
            )
    })
    .workers(1)
    .bind("127.0.0.1:0")
    .unwrap();
    let port = server.addrs()[0].port();
    tokio::spawn(server.run());
    let app = TestApp::spawn().await;
    for how in ["away", "here"] {
        let agent = agent_at(
            &app,
            &format!("redirect {how}"),
            format!("http://127.0.0.1:{port}/{how}"),
        )
        .await;
        assert!(agent.health().await.is_err(), "{how}");
    }
    assert!(
        elsewhere.received().is_empty(),
        "the other host got nothing: {:?}",
        elsewhere.received()
    );
    assert!(
        hits.load(std::sync::atomic::Ordering::SeqCst) >= 1,
        "a same-origin redirect is followed"
    );
}

/// An agent answering with more than the 16 MiB any answer may hold — declared up front, or
/// streamed without a length — is refused without buffering it all.
#[tokio::test]
async fn oversized_answers_are_refused() {
    use actix_web::{App, HttpResponse, HttpServer, web};
    let server = HttpServer::new(|| {
        App::new()
            .route(
                "/declared/{tail:.*}",
                web::to(|| async { HttpResponse::Ok().body(vec![b' '; 17 << 20]) }),
            )
            .route(
                "/streamed/{tail:.*}",
                web::to(|| async {
                    let chunks =
                        futures_util::stream::iter((0..17).map(|_| {
                            Ok::<_, std::io::Error>(web::Bytes::from(vec![b' '; 1 << 20]))
                        }));
                    HttpResponse::Ok().streaming(chunks)
                }),
            )
    })
    .workers(1)
    .bind("127.0.0.1:0")
    .unwrap();
    let port = server.addrs()[0].port();
    tokio::spawn(server.run());
    let app = TestApp::spawn().await;
    for how in ["declared", "streamed"] {
        let agent = agent_at(
            &app,
            &format!("big {how}"),
            format!("http://127.0.0.1:{port}/{how}"),
        )
        .await;
        let failure = agent.health().await.expect_err("too large");
        assert!(
            matches!(&failure, DriverError::Permanent { code, .. } if code == "response_too_large"),
            "{how}: {failure:?}"
        );
    }
}

#[tokio::test]
async fn agent_sends_are_idempotent_and_failures_classified() {
    let sim = TestSim::small();
    let app = TestApp::spawn().await;
    let (agent, _) = app.register_sim(&sim, 60).await;
    let driver = driver(&app, agent).await;
    let first = driver
        .send(&message(
            Channel::Direct,
            "sim_user_0",
            "wm_42_0_3",
            "key-1",
            "您好，新品上市",
        ))
        .await
        .unwrap();
    let again = driver
        .send(&message(
            Channel::Direct,
            "sim_user_0",
            "wm_42_0_3",
            "key-1",
            "您好，新品上市",
        ))
        .await
        .unwrap();
    assert!(!first.replayed && again.replayed);
    assert_eq!(first.remote_msg_id, again.remote_msg_id);
    let counts = stats(&sim).await;
    assert_eq!(counts["delivered"], 1, "one delivery for one key: {counts}");
    assert_eq!(counts["replayed_keys"], 1);

    let wrong = driver
        .send(&message(
            Channel::Direct,
            "sim_user_0",
            "wm_42_1_3",
            "key-2",
            "x",
        ))
        .await
        .unwrap_err();
    assert!(
        matches!(wrong, DriverError::Permanent { ref code, .. } if code == "invalid_receiver"),
        "another account's contact: {wrong:?}"
    );

    sim.control(
        Method::PUT,
        "/faults",
        json!({ "rate_limit_per_minute": 1 }),
    )
    .await;
    driver
        .send(&message(
            Channel::Direct,
            "sim_user_1",
            "wm_42_1_5",
            "key-3",
            "a",
        ))
        .await
        .unwrap();
    let limited = driver
        .send(&message(
            Channel::Direct,
            "sim_user_1",
            "wm_42_1_6",
            "key-4",
            "b",
        ))
        .await
        .unwrap_err();
    assert!(
        matches!(
            limited,
            DriverError::RateLimited {
                retry_after: Some(_),
                ..
            }
        ),
        "{limited:?}"
    );

    sim.control(Method::PUT, "/faults", json!({ "error_rate": 1.0 }))
        .await;
    let busy = driver
        .send(&message(
            Channel::Direct,
            "sim_user_0",
            "wm_42_0_7",
            "key-5",
            "c",
        ))
        .await
        .unwrap_err();
    assert!(busy.is_retryable(), "{busy:?}");
}

#[tokio::test]
async fn wecom_channels_app_messages_mass_messages_and_robots() {
    let sim = TestSim::small();
    let app = TestApp::spawn().await;
    let (_, wecom) = app.register_sim(&sim, 60).await;
    let admin = app.admin_token().await;
    app.send_json(
        Method::PUT,
        &format!("/api/v1/instances/{wecom}/configs/robot_key"),
        &admin,
        json!({ "value": "robot-key-1" }),
    )
    .await;
    let driver = driver(&app, wecom).await;
    let app_message = driver
        .send(&message(
            Channel::AppMessage,
            "app",
            "sim_user_1",
            "k1",
            "审批提醒",
        ))
        .await
        .unwrap();
    assert!(app_message.remote_msg_id.is_some());
    let invalid = driver
        .send(&message(Channel::AppMessage, "app", "nobody", "k2", "x"))
        .await
        .unwrap_err();
    assert!(
        matches!(invalid, DriverError::Permanent { .. }),
        "{invalid:?}"
    );
    let too_long = driver
        .send(&message(
            Channel::AppMessage,
            "app",
            "sim_user_1",
            "k3",
            &"长".repeat(700),
        ))
        .await
        .unwrap_err();
    assert!(
        matches!(too_long, DriverError::Permanent { ref code, .. } if code == "45002"),
        "{too_long:?}"
    );

    let mass = driver
        .send(&message(
            Channel::CustomerMass,
            "sim_user_0",
            "wm_42_0_9",
            "k4",
            "双十一优惠",
        ))
        .await
        .unwrap();
    assert!(
        mass.awaiting_confirmation,
        "customer mass messages wait for the member"
    );
    let before = stats(&sim).await["delivered"].as_u64().unwrap();
    let msgid = mass.remote_msg_id.unwrap();
    sim.control(Method::POST, &format!("/mass/{msgid}/confirm"), json!({}))
        .await;
    assert_eq!(
        stats(&sim).await["delivered"].as_u64().unwrap(),
        before + 1,
        "delivered once the member confirms"
    );

    driver
        .send(&message(Channel::Robot, "robot", "group", "k5", "巡检完成"))
        .await
        .unwrap();
    let direct = driver
        .send(&message(
            Channel::Direct,
            "sim_user_0",
            "wm_42_0_1",
            "k6",
            "x",
        ))
        .await
        .unwrap_err();
    assert!(matches!(direct, DriverError::Unsupported(_)));
}

#[tokio::test]
async fn rotating_the_master_key_keeps_every_secret_readable() {
    let sim = TestSim::small();
    let app = TestApp::spawn().await;
    let (agent, wecom) = app.register_sim(&sim, 60).await;
    let admin = app.admin_token().await;
    let rule: RuleView = app
        .post_as(
            "/api/v1/alert-rules",
            &admin,
            json!({ "name": "down", "rule_type": "instance_error",
                    "channels": [{ "kind": "webhook", "url": "http://127.0.0.1:9/hook", "secret": "s" }] }),
        )
        .await;
    let key = Sealer::generate_key();
    let new = Sealer::from_base64(&key)
        .unwrap()
        .opening_also(&app.ctx.sealer);
    let rotated = service::secrets::rotate(&app.ctx, &new).await.unwrap();
    assert_eq!(rotated.instance_configs, 2, "agent_secret and corp_secret");
    assert_eq!(rotated.alert_channels, 1, "{rule:?}");
    let again = service::secrets::rotate(&app.ctx, &new).await.unwrap();
    assert_eq!(
        again.instance_configs, 0,
        "a rerun finds nothing left under the old key"
    );
    // Everything moved: the new key alone opens every value.
    let mut ctx = app.ctx.clone();
    ctx.sealer = Sealer::from_base64(&key).unwrap();
    let stored = service::alerts::rules::find(&ctx.db, rule.id)
        .await
        .unwrap();
    let channel = &service::alerts::rules::stored_channels(&stored).unwrap()[0];
    assert_eq!(
        ctx.sealer.open(&channel.url).unwrap(),
        "http://127.0.0.1:9/hook"
    );
    assert_eq!(
        ctx.sealer.open(channel.secret.as_ref().unwrap()).unwrap(),
        "s"
    );
    for id in [agent, wecom] {
        let instance = service::instances::find_live(&ctx.db, id).await.unwrap();
        let driver = service::drivers::for_instance(&ctx, &instance)
            .await
            .unwrap();
        driver.health().await.unwrap();
    }
}

/// `wework secrets reseal` while an administrator changes a secret: the change survives
/// whichever commits first, because the rotation holds the rows it rewrites locked (without
/// the lock, a change landing between its read and its write was overwritten by the re-sealed
/// old value).
#[tokio::test]
async fn resealing_while_a_secret_changes_loses_no_change() {
    let sim = TestSim::small();
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let mut instances = Vec::new();
    for i in 0..20 {
        let created: InstanceView = app
            .post_as(
                "/api/v1/instances",
                &admin,
                json!({ "name": format!("agent {i}"), "kind": "agent", "api_url": format!("{}/agent", sim.base), "config": { "agent_secret": "first" } }),
            )
            .await;
        instances.push(created.id);
    }
    let changed = *instances.last().unwrap();
    let mut ring = app.ctx.sealer.clone();
    for round in 0..15 {
        let target = Sealer::from_base64(&Sealer::generate_key())
            .unwrap()
            .opening_also(&ring);
        ring = target.clone();
        let value = format!("changed in round {round}");
        let path = format!("/api/v1/instances/{changed}/configs/agent_secret");
        let (rotated, saved) = tokio::join!(
            service::secrets::rotate(&app.ctx, &target),
            app.send_json(Method::PUT, &path, &admin, json!({ "value": value })),
        );
        rotated.unwrap();
        assert!(saved.status().is_success(), "{:?}", saved.text().await);
        let stored = entity::instance_configs::Entity::find()
            .filter(entity::instance_configs::Column::InstanceId.eq(changed))
            .filter(entity::instance_configs::Column::ConfigKey.eq("agent_secret"))
            .one(&app.ctx.db)
            .await
            .unwrap()
            .unwrap();
        let opened = ring.open(stored.config_value.as_deref().unwrap()).unwrap();
        assert_eq!(
            opened, value,
            "round {round}: the change made during the re-seal survives"
        );
    }
}
