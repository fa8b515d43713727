//! Instances against the simulator: registration, secrets, SSRF refusals, heartbeats (online,
//! offline when the sim stops, one slow instance not delaying others), maintenance.

use entity::states::InstanceStatus;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use service::{
    drivers::LoginQr,
    instances::{ConfigEntryView, InstanceView},
    pagination::Page,
};

use crate::helpers::{TestApp, TestSim, answer, fields, problem};

/// Waits until instance `id` shows `status`.
async fn wait_status(app: &TestApp, id: i64, status: InstanceStatus, seconds: u64) -> InstanceView {
    app.wait_for_as(
        &format!("/api/v1/instances/{id}"),
        seconds,
        |v: &InstanceView| v.status == status,
    )
    .await
}

#[tokio::test]
async fn both_kinds_turn_online_and_go_offline_when_the_sim_stops() {
    let sim = TestSim::small();
    let mut app = TestApp::spawn().await;
    let (agent, wecom) = app.register_sim(&sim, 1).await;
    app.start_worker();
    for id in [agent, wecom] {
        let online = wait_status(&app, id, InstanceStatus::Online, 20).await;
        assert!(online.heartbeat_latency_ms.is_some());
        assert!(online.last_heartbeat.is_some());
    }
    sim.stop().await;
    for id in [agent, wecom] {
        let offline = wait_status(&app, id, InstanceStatus::Offline, 30).await;
        assert!(offline.missed_heartbeats >= 2);
        assert!(offline.error_message.is_some());
    }
}

#[tokio::test]
async fn secrets_are_sealed_masked_and_audited_without_their_values() {
    let sim = TestSim::small();
    let app = TestApp::spawn().await;
    let (agent, _) = app.register_sim(&sim, 30).await;
    let admin = app.admin_token().await;
    let view: InstanceView = app
        .get_as(&format!("/api/v1/instances/{agent}"), &admin)
        .await;
    let secret = view
        .config
        .iter()
        .find(|c| c.key == "agent_secret")
        .unwrap();
    assert_eq!(secret.value, Some(json!("******")));
    assert!(secret.secret);
    let audit = app
        .get_json("/api/v1/audit-logs?operation=instance.create", &admin)
        .await;
    assert!(
        !audit.to_string().contains("sim-agent-secret"),
        "the secret never reaches the audit log"
    );
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
    let stored = entity::instance_configs::Entity::find()
        .filter(entity::instance_configs::Column::ConfigKey.eq("agent_secret"))
        .one(&app.ctx.db)
        .await
        .unwrap()
        .unwrap();
    assert!(
        stored.is_encrypted
            && !stored
                .config_value
                .clone()
                .unwrap()
                .contains("sim-agent-secret")
    );

    let put = app
        .send_json(
            Method::PUT,
            &format!("/api/v1/instances/{agent}/configs/region"),
            &admin,
            json!({ "value": "华东" }),
        )
        .await;
    let put: ConfigEntryView = answer(put, StatusCode::OK).await;
    assert_eq!(put.key, "region");
    assert_eq!(put.value, Some(json!("华东")));
    let wrong_kind = app
        .send_json(
            Method::PUT,
            &format!("/api/v1/instances/{agent}/configs/corp_secret"),
            &admin,
            json!({ "value": "x" }),
        )
        .await;
    assert_eq!(
        fields(&problem(wrong_kind, StatusCode::UNPROCESSABLE_ENTITY).await),
        vec!["corp_secret"]
    );
    let required = app
        .request(
            Method::DELETE,
            &format!("/api/v1/instances/{agent}/configs/agent_secret"),
            Some(&admin),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(required.status(), StatusCode::CONFLICT);
}

#[tokio::test]
async fn pointing_an_instance_elsewhere_needs_its_secrets_again() {
    let (sim, elsewhere) = (TestSim::small(), TestSim::small());
    let app = TestApp::spawn().await;
    let (agent, wecom) = app.register_sim(&sim, 30).await;
    let admin = app.admin_token().await;
    let patch = |id: i64, body: Value| {
        let (app, admin) = (&app, &admin);
        async move {
            app.send_json(
                Method::PATCH,
                &format!("/api/v1/instances/{id}"),
                admin,
                body,
            )
            .await
        }
    };
    let put = app
        .send_json(
            Method::PUT,
            &format!("/api/v1/instances/{wecom}/configs/robot_key"),
            &admin,
            json!({ "value": "robot-key-kept-at-home" }),
        )
        .await;
    let put: ConfigEntryView = answer(put, StatusCode::OK).await;
    assert!(put.secret, "a robot key is a secret");

    // Another host may not inherit the corp secret and the robot key.
    let elsewhere_url = format!("{}/cgi-bin", elsewhere.base);
    let refused = patch(wecom, json!({ "api_url": elsewhere_url })).await;
    let mut refused_fields = fields(&problem(refused, StatusCode::UNPROCESSABLE_ENTITY).await);
    refused_fields.sort();
    assert_eq!(
        refused_fields,
        vec!["config.corp_secret", "config.robot_key"]
    );
    // Even when told to forget, a required secret must be given again.
    let refused = patch(
        wecom,
        json!({ "api_url": elsewhere_url, "forget_secrets": true }),
    )
    .await;
    assert_eq!(
        fields(&problem(refused, StatusCode::UNPROCESSABLE_ENTITY).await),
        vec!["config.corp_secret"]
    );
    // Another path on the same origin is not a move.
    let same_host = patch(
        wecom,
        json!({ "api_url": format!("{}/cgi-bin/", sim.base) }),
    )
    .await;
    let _: InstanceView = answer(same_host, StatusCode::OK).await;

    let moved = patch(
        wecom,
        json!({ "api_url": elsewhere_url, "forget_secrets": true, "config": { "corp_secret": "sim-corp-secret" } }),
    )
    .await;
    let _: InstanceView = answer(moved, StatusCode::OK).await;
    let view: InstanceView = app
        .get_as(&format!("/api/v1/instances/{wecom}"), &admin)
        .await;
    let keys: Vec<&str> = view.config.iter().map(|c| c.key.as_str()).collect();
    assert!(
        keys.contains(&"corp_secret") && !keys.contains(&"robot_key"),
        "{keys:?}"
    );
    let instance = service::instances::find_live(&app.ctx.db, wecom)
        .await
        .unwrap();
    let driver = service::drivers::for_instance(&app.ctx, &instance)
        .await
        .unwrap();
    assert!(driver.health().await.is_ok(), "it works at the new host");

    // A proxy carries the proxy password and, over plain HTTP, the agent secret's signatures.
    let proxied = patch(
        agent,
        json!({ "proxy_host": "127.0.0.1", "proxy_port": 3128, "proxy_password": "proxy-pass", "config": { "agent_secret": "sim-agent-secret" } }),
    )
    .await;
    let proxied: InstanceView = answer(proxied, StatusCode::OK).await;
    assert!(proxied.proxy_password_set);
    let refused = patch(agent, json!({ "proxy_port": 3129 })).await;
    let mut refused_fields = fields(&problem(refused, StatusCode::UNPROCESSABLE_ENTITY).await);
    refused_fields.sort();
    assert_eq!(
        refused_fields,
        vec!["config.agent_secret", "proxy_password"]
    );
    let forgotten = patch(
        agent,
        json!({ "proxy_port": 3129, "forget_secrets": true, "config": { "agent_secret": "sim-agent-secret" } }),
    )
    .await;
    let view: InstanceView = answer(forgotten, StatusCode::OK).await;
    assert!(!view.proxy_password_set);
    assert_eq!(view.proxy_port, Some(3129));
}

/// A secret stored while the instance moves elsewhere: either the move sees it (and, not given
/// again, is refused) or the secret is stored after the move, for the new host — never carried
/// off unseen. Without the instance row lock the move checked the secrets before its
/// transaction and the other write landed in between.
#[tokio::test]
async fn a_secret_stored_while_the_instance_moves_is_never_carried_off() {
    let (sim, elsewhere) = (TestSim::small(), TestSim::small());
    let app = TestApp::spawn().await;
    let (_, wecom) = app.register_sim(&sim, 30).await;
    let admin = app.admin_token().await;
    let (instance_path, key_path) = (
        format!("/api/v1/instances/{wecom}"),
        format!("/api/v1/instances/{wecom}/configs/robot_key"),
    );
    let mut moved = 0;
    for round in 0..20 {
        let removed = app
            .request(Method::DELETE, &key_path, Some(&admin))
            .send()
            .await
            .unwrap();
        assert!(matches!(
            removed.status(),
            StatusCode::NO_CONTENT | StatusCode::NOT_FOUND
        ));
        let origin = if round % 2 == 0 {
            &elsewhere.base
        } else {
            &sim.base
        };
        let move_body = json!({ "api_url": format!("{origin}/cgi-bin"), "config": { "corp_secret": "sim-corp-secret" } });
        let (patched, put) = tokio::join!(
            app.send_json(Method::PATCH, &instance_path, &admin, move_body),
            app.send_json(
                Method::PUT,
                &key_path,
                &admin,
                json!({ "value": format!("robot key {round}") })
            ),
        );
        let _: ConfigEntryView = answer(put, StatusCode::OK).await;
        match patched.status() {
            StatusCode::OK => {
                moved += 1;
                let audit = app
                    .get_json(
                        &format!("/api/v1/audit-logs?operation=instance.update&resource_id={wecom}&limit=1"),
                        &admin,
                    )
                    .await;
                let before = &audit["items"][0]["old_values"]["config"];
                assert!(
                    !before
                        .as_array()
                        .unwrap()
                        .iter()
                        .any(|c| c["key"] == "robot_key"),
                    "round {round}: the move carried off a secret it never saw: {before}"
                );
            }
            StatusCode::UNPROCESSABLE_ENTITY => {
                let problem = problem(patched, StatusCode::UNPROCESSABLE_ENTITY).await;
                assert_eq!(fields(&problem), vec!["config.robot_key"]);
                // Nothing moved: the next round moves to the same place again.
                let put_back = json!({ "api_url": format!("{origin}/cgi-bin"), "forget_secrets": true, "config": { "corp_secret": "sim-corp-secret" } });
                let forced = app
                    .send_json(Method::PATCH, &instance_path, &admin, put_back)
                    .await;
                let _: InstanceView = answer(forced, StatusCode::OK).await;
            }
            other => panic!("round {round}: the move answered {other}"),
        }
    }
    assert!(moved > 0, "some moves went first");
}

#[tokio::test]
async fn the_outbound_policy_refuses_private_and_special_addresses() {
    let app = TestApp::spawn_with("[outbound]\nallowed_networks = []").await;
    let admin = app.admin_token().await;
    for url in [
        "http://127.0.0.1:9/agent",
        "http://169.254.169.254/latest",
        "http://localhost:9/",
        "http://[::ffff:10.0.0.1]/",
        "http://no-such-host.invalid/",
        "ftp://example.com/",
    ] {
        let response = app
            .post("/api/v1/instances", &admin, json!({ "name": "x", "kind": "agent", "api_url": url, "config": { "agent_secret": "s" } }))
            .await;
        let body = problem(response, StatusCode::UNPROCESSABLE_ENTITY).await;
        assert_eq!(fields(&body), vec!["api_url"], "{url}: {body}");
    }
    let missing = app
        .post(
            "/api/v1/instances",
            &admin,
            json!({ "name": "x", "kind": "wecom", "config": { "corp_id": "c" } }),
        )
        .await;
    assert_eq!(
        fields(&problem(missing, StatusCode::UNPROCESSABLE_ENTITY).await),
        vec!["config.corp_secret"]
    );
}

#[tokio::test]
async fn a_slow_instance_does_not_delay_the_others() {
    let fast = TestSim::small();
    let slow = TestSim::start(sim::SimConfig {
        faults: sim::Faults {
            latency_ms_min: 8_000,
            latency_ms_max: 8_000,
            ..Default::default()
        },
        ..Default::default()
    });
    let mut app = TestApp::spawn().await;
    let (slow_agent, slow_wecom) = app.register_sim(&slow, 1).await;
    let (fast_agent, _) = app.register_sim(&fast, 1).await;
    app.start_worker();
    let fast_view = wait_status(&app, fast_agent, InstanceStatus::Online, 10).await;
    assert!(fast_view.last_heartbeat.is_some());
    let admin = app.admin_token().await;
    for id in [slow_agent, slow_wecom] {
        let view: InstanceView = app.get_as(&format!("/api/v1/instances/{id}"), &admin).await;
        assert_ne!(
            view.status,
            InstanceStatus::Online,
            "the slow instance times out instead"
        );
    }
}

#[tokio::test]
async fn maintenance_pauses_heartbeats_and_check_runs_one_now() {
    let sim = TestSim::small();
    let app = TestApp::spawn().await;
    let (agent, _) = app.register_sim(&sim, 30).await;
    let admin = app.admin_token().await;
    let check: Value = app
        .post_json(
            &format!("/api/v1/instances/{agent}/check"),
            &admin,
            json!({}),
        )
        .await;
    assert_eq!(check["online"], true);
    assert_eq!(check["instance"]["status"], "online");
    let on: InstanceView = app
        .post_as(
            &format!("/api/v1/instances/{agent}/maintenance"),
            &admin,
            json!({ "on": true }),
        )
        .await;
    assert_eq!(on.status, InstanceStatus::Maintenance);
    app.post(
        &format!("/api/v1/instances/{agent}/check"),
        &admin,
        json!({}),
    )
    .await;
    let still: InstanceView = app
        .get_as(&format!("/api/v1/instances/{agent}"), &admin)
        .await;
    assert_eq!(
        still.status,
        InstanceStatus::Maintenance,
        "a heartbeat never overrides maintenance"
    );
    let renamed = app
        .send_json(
            Method::PATCH,
            &format!("/api/v1/instances/{agent}"),
            &admin,
            json!({ "name": "renamed", "description": null }),
        )
        .await;
    let renamed: InstanceView = answer(renamed, StatusCode::OK).await;
    assert_eq!(renamed.name, "renamed");
    assert!(renamed.description.is_none());
    let listed: Page<InstanceView> = app
        .get_as("/api/v1/instances?status=maintenance&kind=agent", &admin)
        .await;
    assert_eq!(listed.items.len(), 1);
    let bad_filter = app.get("/api/v1/instances?status=sleeping", &admin).await;
    assert_eq!(
        fields(&problem(bad_filter, StatusCode::UNPROCESSABLE_ENTITY).await),
        vec!["status"]
    );
    let deleted = app
        .request(
            Method::DELETE,
            &format!("/api/v1/instances/{agent}"),
            Some(&admin),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        app.get(&format!("/api/v1/instances/{agent}"), &admin)
            .await
            .status(),
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn login_qr_passes_through_for_agents_and_is_refused_for_wecom_apps() {
    let sim = TestSim::small();
    let app = TestApp::spawn().await;
    let (agent, wecom) = app.register_sim(&sim, 30).await;
    let admin = app.admin_token().await;
    let qr: LoginQr = app
        .post_as(
            &format!("/api/v1/instances/{agent}/login-qr"),
            &admin,
            json!({ "account_wxid": "sim_user_0" }),
        )
        .await;
    assert!(qr.qr_code_url.starts_with("https://"));
    let refused = app
        .post(
            &format!("/api/v1/instances/{wecom}/login-qr"),
            &admin,
            json!({}),
        )
        .await;
    assert_eq!(refused.status(), StatusCode::CONFLICT);
}
