//! Callbacks: WeCom URL verification and events encrypted by an independent implementation
//! (OpenSSL's AES through the `openssl` command), refusals, de-duplication; agent events pushed
//! by the simulator and applied by the worker.

use std::{
    io::Write,
    process::{Command, Stdio},
    time::{SystemTime, UNIX_EPOCH},
};

use entity::states::FriendStatus;
use reqwest::{Method, StatusCode};
use serde_json::json;
use service::{
    contacts::{ContactView, tags::TagView},
    instances::{ConfigEntryView, InstanceView},
    pagination::Page,
};
use sha1::{Digest, Sha1};

use crate::helpers::{TestApp, TestSim, answer, problem};

const TOKEN: &str = "callback-token-1";

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// WeCom's envelope, encrypted with `openssl enc -aes-256-cbc -nopad` (not our code).
fn encrypt(key: &[u8; 32], message: &str, receive_id: &str) -> String {
    let mut plain = b"0123456789abcdef".to_vec();
    plain.extend_from_slice(&(message.len() as u32).to_be_bytes());
    plain.extend_from_slice(message.as_bytes());
    plain.extend_from_slice(receive_id.as_bytes());
    let pad = 32 - plain.len() % 32;
    plain.extend(std::iter::repeat_n(pad as u8, pad));
    let mut child = Command::new("openssl")
        .args([
            "enc",
            "-aes-256-cbc",
            "-nopad",
            "-K",
            &hex(key),
            "-iv",
            &hex(&key[..16]),
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("the openssl command is needed for this test");
    child.stdin.take().unwrap().write_all(&plain).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    data_encoding::BASE64.encode(&out.stdout)
}

fn sign(timestamp: &str, nonce: &str, encrypt: &str) -> String {
    let mut parts = [TOKEN, timestamp, nonce, encrypt];
    parts.sort();
    hex(&Sha1::digest(parts.concat().as_bytes()))
}

fn now() -> String {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        .to_string()
}

fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// A synced sim with callback settings on its WeCom instance; returns the AES key too.
async fn setup() -> (TestSim, TestApp, InstanceView, InstanceView, [u8; 32]) {
    let sim = TestSim::small();
    let mut app = TestApp::spawn().await;
    let (agent, wecom) = app.register_sim(&sim, 60).await;
    app.start_worker();
    let admin = app.admin_token().await;
    let key: [u8; 32] = std::array::from_fn(|i| (i as u8).wrapping_mul(37).wrapping_add(11));
    let encoding_key = data_encoding::BASE64
        .encode(&key)
        .trim_end_matches('=')
        .to_owned();
    for (k, v) in [
        ("callback_token", TOKEN.to_owned()),
        ("callback_aes_key", encoding_key),
    ] {
        let put = app
            .send_json(
                Method::PUT,
                &format!("/api/v1/instances/{wecom}/configs/{k}"),
                &admin,
                json!({ "value": v }),
            )
            .await;
        let put: ConfigEntryView = answer(put, StatusCode::OK).await;
        assert_eq!(put.key, k);
    }
    app.sync(agent).await;
    app.sync(wecom).await;
    let agent: InstanceView = app
        .get_as(&format!("/api/v1/instances/{agent}"), &admin)
        .await;
    let wecom: InstanceView = app
        .get_as(&format!("/api/v1/instances/{wecom}"), &admin)
        .await;
    (sim, app, agent, wecom, key)
}

fn path_of(url: &str) -> String {
    url.split_once("/api/")
        .map(|(_, rest)| format!("/api/{rest}"))
        .unwrap()
}

#[tokio::test]
async fn url_verification_answers_the_plaintext_and_refuses_forgeries() {
    let (_sim, app, _, wecom, key) = setup().await;
    let path = path_of(&wecom.callback_url);
    let verify = |echostr: String, signature: String, timestamp: String| {
        app.request(
            Method::GET,
            &format!(
                "{path}?msg_signature={signature}&timestamp={timestamp}&nonce=12345&echostr={}",
                encode(&echostr)
            ),
            None,
        )
        .send()
    };
    let ts = now();
    let echostr = encrypt(&key, "5927587162893612345", "wwsimcorp");
    let ok = verify(echostr.clone(), sign(&ts, "12345", &echostr), ts.clone())
        .await
        .unwrap();
    assert_eq!(ok.status(), StatusCode::OK);
    assert_eq!(
        ok.text().await.unwrap(),
        "5927587162893612345",
        "the bare plaintext, nothing around it"
    );

    let forged = verify(echostr.clone(), "0".repeat(40), ts.clone())
        .await
        .unwrap();
    assert_eq!(
        problem(forged, StatusCode::FORBIDDEN).await["code"],
        "forbidden"
    );
    let old = (ts.parse::<i64>().unwrap() - 3600).to_string();
    let stale = verify(echostr.clone(), sign(&old, "12345", &echostr), old)
        .await
        .unwrap();
    assert_eq!(stale.status(), StatusCode::FORBIDDEN);
    let other_corp = encrypt(&key, "1", "wwsomeoneelse");
    let wrong_id = verify(other_corp.clone(), sign(&ts, "12345", &other_corp), ts)
        .await
        .unwrap();
    assert_eq!(wrong_id.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn events_are_stored_once_and_applied() {
    let (_sim, app, _, wecom, key) = setup().await;
    let path = path_of(&wecom.callback_url);
    let ts = now();
    let event = format!(
        "<xml><ToUserName><![CDATA[wwsimcorp]]></ToUserName><FromUserName><![CDATA[sys]]></FromUserName><CreateTime>{ts}</CreateTime><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[change_external_contact]]></Event><ChangeType><![CDATA[add_external_contact]]></ChangeType><UserID><![CDATA[sim_user_0]]></UserID><ExternalUserID><![CDATA[wm_from_callback]]></ExternalUserID></xml>"
    );
    let encrypted = encrypt(&key, &event, "wwsimcorp");
    let body = format!(
        "<xml><ToUserName><![CDATA[wwsimcorp]]></ToUserName><Encrypt><![CDATA[{encrypted}]]></Encrypt><AgentID><![CDATA[1000002]]></AgentID></xml>"
    );
    let url = format!(
        "{path}?msg_signature={}&timestamp={ts}&nonce=777",
        sign(&ts, "777", &encrypted)
    );
    for _ in 0..2 {
        let response = app
            .request(Method::POST, &url, None)
            .header("content-type", "text/xml")
            .body(body.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.text().await.unwrap(), "success");
    }
    use sea_orm::{EntityTrait, PaginatorTrait};
    assert_eq!(
        entity::inbound_events::Entity::find()
            .count(&app.ctx.db)
            .await
            .unwrap(),
        1,
        "a redelivered event is stored once"
    );
    let found = app
        .wait_for_as(
            "/api/v1/contacts?q=wm_from_callback",
            10,
            |v: &Page<ContactView>| !v.items.is_empty(),
        )
        .await;
    assert_eq!(found.items[0].friend_status, FriendStatus::Normal);

    let tampered = app
        .request(Method::POST, &url.replace("nonce=777", "nonce=778"), None)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(tampered.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn agent_events_pushed_by_the_simulator_are_verified_deduplicated_and_applied() {
    let (sim, app, agent, _, _) = setup().await;
    let url = app.agent_callback_url(agent.id).await;
    let event = json!({
        "type": "message.received", "account_wxid": "sim_user_0", "id": "evt-fixed-1",
        "data": { "from": "wm_42_0_1", "msgtype": "text", "content": "你好，在吗？", "message_id": "remote-1" }
    });
    // The same event twice: the second delivery is a duplicate, accepted and ignored.
    for _ in 0..2 {
        sim.push_event(&url, event.clone()).await;
    }
    let admin = app.admin_token().await;
    let agent_id = agent.id;
    app.wait_for_as(
        &format!("/api/v1/contacts?q=wm_42_0_1&instance_id={agent_id}&limit=200"),
        10,
        |v: &Page<ContactView>| {
            v.items
                .iter()
                .any(|c| c.wxid == "wm_42_0_1" && c.last_chat_time.is_some())
        },
    )
    .await;
    use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
    let inbound = entity::messages::Entity::find()
        .filter(entity::messages::Column::Direction.eq("in"))
        .all(&app.ctx.db)
        .await
        .unwrap();
    assert_eq!(inbound.len(), 1, "the repeated event made one message");
    assert_eq!(inbound[0].message_content.as_deref(), Some("你好，在吗？"));

    // A worker that died after applying the event but before marking it: its lease ends and the
    // event is applied again, which stores nothing twice.
    use sea_orm::sea_query::Expr;
    entity::inbound_events::Entity::update_many()
        .col_expr(
            entity::inbound_events::Column::ProcessedAt,
            Expr::value(Option::<chrono::NaiveDateTime>::None),
        )
        .col_expr(
            entity::inbound_events::Column::LeaseUntil,
            Expr::value(chrono::Utc::now().naive_utc() - chrono::TimeDelta::seconds(1)),
        )
        .exec(&app.ctx.db)
        .await
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let events = entity::inbound_events::Entity::find()
            .all(&app.ctx.db)
            .await
            .unwrap();
        if events
            .iter()
            .all(|e| e.processed_at.is_some() && e.attempts == 2)
        {
            assert!(
                events.iter().all(|e| e.error_message.is_none()),
                "{events:?}"
            );
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "not applied again: {events:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let again = entity::messages::Entity::find()
        .filter(entity::messages::Column::Direction.eq("in"))
        .count(&app.ctx.db)
        .await
        .unwrap();
    assert_eq!(again, 1, "the event applied twice stored one message");
    let _ = admin;

    let forged = app
        .request(Method::POST, &path_of(&url), None)
        .header("webhook-id", "evt-x")
        .header("webhook-timestamp", now())
        .header("webhook-signature", "v1,AAAA")
        .body(r#"{"type":"account.offline","account_wxid":"sim_user_0"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(
        problem(forged, StatusCode::FORBIDDEN).await["code"],
        "forbidden"
    );
}

#[tokio::test]
async fn a_contact_update_replaces_its_synced_tags_and_keeps_local_ones() {
    let (sim, app, agent, _, _) = setup().await;
    let url = app.agent_callback_url(agent.id).await;
    let admin = app.admin_token().await;
    let agent_id = agent.id;
    let listed: Page<ContactView> = app
        .get_as(
            &format!("/api/v1/contacts?q=wm_42_0_1&instance_id={agent_id}&limit=200"),
            &admin,
        )
        .await;
    let contact = listed
        .items
        .into_iter()
        .find(|c| c.wxid == "wm_42_0_1")
        .unwrap();
    assert!(
        !contact.tags.is_empty(),
        "the simulator tags its contacts: {contact:?}"
    );
    let local: TagView = app
        .post_as(
            "/api/v1/tags",
            &admin,
            json!({ "name": "老客户", "color": "#00aa88" }),
        )
        .await;
    let _: ContactView = app
        .send_as(
            Method::PATCH,
            &format!("/api/v1/contacts/{}", contact.id),
            &admin,
            json!({ "tag_ids": [local.id] }),
        )
        .await;
    let event = json!({
        "type": "contact.updated", "account_wxid": "sim_user_0", "id": "evt-tags-1",
        "data": { "contact": { "wxid": "wm_42_0_1", "nickname": contact.nickname, "contact_type": "external",
                  "tags": [{ "id": "et_new", "group": "来源", "name": "直播间" }] } }
    });
    sim.push_event(&url, event).await;
    let updated = app
        .wait_for_as(
            &format!("/api/v1/contacts/{}", contact.id),
            10,
            |c: &ContactView| c.tags.iter().any(|t| t.name == "直播间"),
        )
        .await;
    let mut names: Vec<&str> = updated.tags.iter().map(|t| t.name.as_str()).collect();
    names.sort_unstable();
    assert_eq!(
        names,
        vec!["直播间", "老客户"],
        "the old synced tags are gone, the local one stays"
    );
}

#[tokio::test]
async fn a_member_writing_to_the_app_is_served_by_the_desk_and_answered_with_an_app_message() {
    let (sim, app, _, wecom, key) = setup().await;
    let admin = app.admin_token().await;
    let accounts: Page<service::instances::accounts::AccountView> = app
        .get_as(
            &format!("/api/v1/accounts?instance_id={}", wecom.id),
            &admin,
        )
        .await;
    let member = accounts
        .items
        .iter()
        .find(|a| a.wxid == "sim_user_0")
        .unwrap();
    let (_, agents) = crate::desk::desk(&app, member.id, "round_robin", &[3]).await;
    crate::desk::go(&app, &agents[0].1, "online").await;

    // The member writes to the app: an encrypted text callback.
    let ts = now();
    let message = format!(
        "<xml><ToUserName><![CDATA[wwsimcorp]]></ToUserName><FromUserName><![CDATA[sim_user_0]]></FromUserName><CreateTime>{ts}</CreateTime><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[报销流程怎么走]]></Content><MsgId>7300000000001</MsgId><AgentID>1000002</AgentID></xml>"
    );
    let encrypted = encrypt(&key, &message, "wwsimcorp");
    let body = format!(
        "<xml><ToUserName><![CDATA[wwsimcorp]]></ToUserName><Encrypt><![CDATA[{encrypted}]]></Encrypt><AgentID><![CDATA[1000002]]></AgentID></xml>"
    );
    let url = format!(
        "{}?msg_signature={}&timestamp={ts}&nonce=901",
        path_of(&wecom.callback_url),
        sign(&ts, "901", &encrypted)
    );
    let posted = app
        .request(Method::POST, &url, None)
        .header("content-type", "text/xml")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(posted.status(), StatusCode::OK);
    let all = crate::desk::wait_conversations(&app, |c| {
        c.iter().any(|c| c.agent_id == Some(agents[0].0.id))
    })
    .await;
    let id = all[0].id;

    // The agent's answer goes back to the member as an app message (message/send), once.
    let reply = app
        .post(
            &format!("/api/v1/desk/conversations/{id}/reply"),
            &agents[0].1,
            json!({ "content": "在审批里选「报销」即可" }),
        )
        .await;
    assert_eq!(reply.status(), StatusCode::CREATED);
    for _ in 0..100 {
        let sent = crate::opt_out::deliveries_to(&sim, "sim_user_0").await;
        if sent.iter().any(|c| c == "在审批里选「报销」即可") {
            assert_eq!(
                sent.iter()
                    .filter(|c| *c == "在审批里选「报销」即可")
                    .count(),
                1
            );
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    panic!(
        "the reply never reached the member: {:?}",
        crate::opt_out::deliveries_to(&sim, "sim_user_0").await
    );
}

/// Several workers applying one backlog at once: each event is claimed by one of them, applied
/// once (one attempt each) and stores its message once.
#[tokio::test]
async fn workers_racing_for_one_backlog_apply_each_event_once() {
    use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
    const EVENTS: usize = 120;
    let sim = TestSim::small();
    let mut app = TestApp::spawn().await;
    let agent = app.with_synced_agent(&sim).await;
    app.stop_worker().await;
    let url = app.agent_callback_url(agent).await;
    for i in 0..EVENTS {
        let event = json!({
            "type": "message.received", "account_wxid": "sim_user_0", "id": format!("race-{i}"),
            "data": { "from": format!("wm_42_0_{}", i % 10), "msgtype": "text", "content": format!("并发 {i}"), "message_id": format!("race-remote-{i}") }
        });
        sim.push_event(&url, event).await;
    }
    let unprocessed = || {
        entity::inbound_events::Entity::find()
            .filter(entity::inbound_events::Column::ProcessedAt.is_null())
            .count(&app.ctx.db)
    };
    // Each worker passes over the backlog as the worker job does; a pass that fails is logged
    // and the next one goes on, as the job's next tick would.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(120);
    let workers = (0..4).map(|_| {
        let ctx = app.ctx.clone();
        async move {
            let mut failures = Vec::new();
            while tokio::time::Instant::now() < deadline {
                match service::callbacks::process::pending(&ctx, 10).await {
                    Ok(0) if unprocessed().await.unwrap() == 0 => break,
                    Ok(0) => tokio::time::sleep(std::time::Duration::from_millis(200)).await,
                    Ok(_) => {}
                    Err(e) => failures.push(e.to_string()),
                }
            }
            failures
        }
    });
    let failures: Vec<String> = futures_util::future::join_all(workers)
        .await
        .into_iter()
        .flatten()
        .collect();
    let events = entity::inbound_events::Entity::find()
        .all(&app.ctx.db)
        .await
        .unwrap();
    assert_eq!(events.len(), EVENTS);
    let unsettled: Vec<_> = events
        .iter()
        .filter(|e| e.processed_at.is_none() || e.error_message.is_some())
        .collect();
    assert!(
        unsettled.is_empty(),
        "events not applied: {unsettled:#?}; failed passes: {failures:?}"
    );
    // One claim per event: a racing worker finds the attempt count moved and leaves it.
    let retried: Vec<_> = events.iter().filter(|e| e.attempts != 1).collect();
    assert!(
        retried.is_empty(),
        "events claimed more than once: {retried:#?}; failed passes: {failures:?}"
    );
    let stored: Vec<String> = entity::messages::Entity::find()
        .filter(entity::messages::Column::Direction.eq("in"))
        .all(&app.ctx.db)
        .await
        .unwrap()
        .into_iter()
        .filter_map(|m| m.remote_msg_id)
        .collect();
    let distinct: std::collections::BTreeSet<&String> = stored.iter().collect();
    assert_eq!(
        (stored.len(), distinct.len()),
        (EVENTS, EVENTS),
        "each event's message stored once (failed passes: {failures:?})"
    );
}
