//! 微信客服 channels end to end against the sim's kf subset: a WeCom instance with the 客服
//! secret lists its 微信客服 accounts; a visitor entering from a link is welcomed with the
//! event's code and their source kept; their messages (announced by an encrypted
//! `kf_msg_or_event` callback, pulled with `sync_msg`) queue and are assigned; replies go out
//! through `kf/send_msg` within WeCom's 48-hour / 5-message window, which the desk enforces and
//! shows; closing ends the WeCom session and sends the rating prompt with its code. Entries WeCom
//! hands back twice show once, and a callback that never arrived is caught up by the worker.

use std::time::Duration;

use entity::states::{ConversationState, MessageDirection};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use service::{
    desk::{
        conversations::{ConversationView, DeskMessageView},
        visitors::VisitorView,
    },
    instances::{InstanceView, accounts::AccountView},
    pagination::Page,
};

use crate::{
    desk::{desk, wait_conversations},
    helpers::{TestApp, TestSim, answer, fields, problem},
};

const TOKEN: &str = "kfCallbackToken";

/// A WeCom instance on the sim with the 微信客服 secret and callback settings, synced, with the
/// sim's callbacks pointed at it. Returns the 微信客服 account `wksim0`'s id.
async fn kf_instance() -> (TestSim, TestApp, i64) {
    let sim = TestSim::small();
    let mut app = TestApp::spawn().await;
    let (_, wecom) = app.register_sim(&sim, 60).await;
    app.start_worker();
    let admin = app.admin_token().await;
    let key: [u8; 32] = std::array::from_fn(|i| (i as u8).wrapping_mul(29).wrapping_add(3));
    let aes_key = data_encoding::BASE64
        .encode(&key)
        .trim_end_matches('=')
        .to_owned();
    for (k, v) in [
        ("kf_secret", "sim-kf-secret".to_owned()),
        ("callback_token", TOKEN.to_owned()),
        ("callback_aes_key", aes_key.clone()),
    ] {
        let put = app
            .send_json(
                Method::PUT,
                &format!("/api/v1/instances/{wecom}/configs/{k}"),
                &admin,
                json!({ "value": v }),
            )
            .await;
        assert_eq!(put.status(), StatusCode::OK, "config {k}");
    }
    app.sync(wecom).await;
    let accounts: Page<AccountView> = app
        .get_as(&format!("/api/v1/accounts?instance_id={wecom}"), &admin)
        .await;
    let kf = accounts
        .items
        .iter()
        .find(|a| a.wxid == "kf:wksim0")
        .unwrap_or_else(|| panic!("the 微信客服 accounts are listed: {:#?}", accounts.items));
    assert_eq!(kf.nickname.as_deref(), Some("在线客服1"));
    let instance: InstanceView = app
        .get_as(&format!("/api/v1/instances/{wecom}"), &admin)
        .await;
    let path = instance
        .callback_url
        .split_once("/api/")
        .map(|(_, rest)| format!("/api/{rest}"))
        .unwrap();
    let set = sim
        .control(
            Method::PUT,
            "/kf/callback",
            json!({ "url": format!("{}{path}", app.address), "token": TOKEN, "aes_key": aes_key }),
        )
        .await;
    assert_eq!(set.status(), StatusCode::NO_CONTENT);
    (sim, app, kf.id)
}

/// What the platform sent to visitors through 微信客服.
async fn sent(sim: &TestSim) -> Vec<Value> {
    sim.control(Method::GET, "/kf/sent", json!({}))
        .await
        .json()
        .await
        .unwrap()
}

async fn wait_sent(sim: &TestSim, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    for _ in 0..150 {
        let all = sent(sim).await;
        if done(&all) {
            return all;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!(
        "the sim never got the expected sends: {:#?}",
        sent(sim).await
    );
}

async fn session_state(sim: &TestSim, visitor: &str) -> i64 {
    let sessions: Vec<Value> = sim
        .control(Method::GET, "/kf/sessions", json!({}))
        .await
        .json()
        .await
        .unwrap();
    sessions
        .iter()
        .find(|s| s["external_userid"] == visitor)
        .and_then(|s| s["service_state"].as_i64())
        .unwrap_or_else(|| panic!("no session for {visitor}: {sessions:#?}"))
}

/// A visitor writes to `wksim0`; the sim answers with the callback's HTTP status.
async fn visitor_writes(sim: &TestSim, visitor: &str, content: &str) -> Value {
    let r = sim
        .control(
            Method::POST,
            "/kf/messages",
            json!({ "open_kfid": "wksim0", "external_userid": visitor, "content": content }),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    r.json().await.unwrap()
}

async fn reply(app: &TestApp, token: &str, id: i64, text: &str) -> reqwest::Response {
    app.post(
        &format!("/api/v1/desk/conversations/{id}/reply"),
        token,
        json!({ "content": text }),
    )
    .await
}

async fn messages_of(
    app: &TestApp,
    id: i64,
    done: impl Fn(&[DeskMessageView]) -> bool,
) -> Vec<DeskMessageView> {
    let page: Page<DeskMessageView> = app
        .wait_for_as(
            &format!("/api/v1/desk/conversations/{id}/messages?limit=100"),
            30,
            |p: &Page<DeskMessageView>| done(&p.items),
        )
        .await;
    page.items
}

#[tokio::test]
async fn a_wechat_user_is_welcomed_served_within_the_send_window_and_rated() {
    let (sim, app, account) = kf_instance().await;
    let admin = app.admin_token().await;
    let (_, agents) = desk(&app, account, "least_busy", &[3]).await;
    let (agent, token) = &agents[0];
    crate::desk::go(&app, token, "online").await;

    // Entering from a link: welcomed with the event's code; where they came from is kept.
    let entered = sim
        .control(
            Method::POST,
            "/kf/enter",
            json!({ "open_kfid": "wksim0", "external_userid": "wmVisitorA", "scene_param": "spring_sale" }),
        )
        .await;
    assert_eq!(entered.status(), StatusCode::OK);
    let welcomed = wait_sent(&sim, |s| s.iter().any(|m| m["via"] == "on_event")).await;
    assert_eq!(welcomed[0]["content"], "您好，客服马上为您服务");
    assert_eq!(welcomed[0]["to"], "wmVisitorA");

    // Their message is pulled after the callback, opens a conversation and is assigned.
    let callback = visitor_writes(&sim, "wmVisitorA", "你好，我想退货").await;
    assert_eq!(callback["callback"], 200, "{callback}");
    let all = wait_conversations(&app, |c| {
        c.iter()
            .any(|c| c.visitor.external_id == "wmVisitorA" && c.agent_id == Some(agent.id))
    })
    .await;
    let conversation = all
        .iter()
        .find(|c| c.visitor.external_id == "wmVisitorA")
        .unwrap();
    let id = conversation.id;
    // The profile comes from kf/customer/batchget; the WeCom session is the API's now.
    assert!(
        conversation
            .visitor
            .nickname
            .as_deref()
            .is_some_and(|n| n.starts_with("微信访客")),
        "{conversation:#?}"
    );
    let visitor: VisitorView = app
        .get_as(
            &format!("/api/v1/desk/visitors/{}", conversation.visitor.id),
            &admin,
        )
        .await;
    assert_eq!(visitor.source_scene.as_deref(), Some("spring_sale"));
    assert_eq!(session_state(&sim, "wmVisitorA").await, 1);
    let window = conversation
        .send_window
        .clone()
        .expect("a 微信客服 conversation shows its window");
    assert_eq!(window.replies_left, 5);

    // Eight replies at once: five go out through kf/send_msg, three are refused until the
    // visitor writes again (the window is taken in one conditional update, not read then written).
    let accepted: ConversationView = answer(
        app.post(
            &format!("/api/v1/desk/conversations/{id}/accept"),
            token,
            json!({}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(accepted.state, ConversationState::Active);
    let texts: Vec<String> = (1..=8).map(|n| format!("第{n}条回复")).collect();
    let at_once: Vec<_> = texts.iter().map(|t| reply(&app, token, id, t)).collect();
    let answers = futures_util::future::join_all(at_once).await;
    let statuses: Vec<StatusCode> = answers.iter().map(reqwest::Response::status).collect();
    assert_eq!(
        statuses
            .iter()
            .filter(|s| **s == StatusCode::CREATED)
            .count(),
        5,
        "{statuses:?}"
    );
    assert_eq!(
        statuses
            .iter()
            .filter(|s| **s == StatusCode::CONFLICT)
            .count(),
        3,
        "{statuses:?}"
    );
    let refused = problem(reply(&app, token, id, "第9条").await, StatusCode::CONFLICT).await;
    assert_eq!(fields(&refused), ["content"]);
    let now: ConversationView = app
        .get_as(&format!("/api/v1/desk/conversations/{id}"), token)
        .await;
    assert_eq!(now.send_window.unwrap().replies_left, 0);
    let out = wait_sent(&sim, |s| {
        s.iter().filter(|m| m["via"] == "send_msg").count() == 5
    })
    .await;
    assert!(
        out.iter().all(|m| m["attempts"] == 1),
        "each reply once, with a msgid of its own: {out:#?}"
    );
    visitor_writes(&sim, "wmVisitorA", "好的，谢谢").await;
    messages_of(&app, id, |m| {
        m.iter().any(|m| m.content.as_deref() == Some("好的，谢谢"))
    })
    .await;
    assert_eq!(
        reply(&app, token, id, "不客气").await.status(),
        StatusCode::CREATED
    );

    // Closing ends the WeCom session and sends the rating prompt with the session's code.
    let closed: ConversationView = answer(
        app.post(
            &format!("/api/v1/desk/conversations/{id}/close"),
            token,
            json!({}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(closed.state, ConversationState::Closed);
    assert_eq!(session_state(&sim, "wmVisitorA").await, 4);
    let prompts = wait_sent(&sim, |s| {
        s.iter()
            .any(|m| m["via"] == "on_event" && m["content"] == "请为本次服务打分：回复 1-5")
    })
    .await;
    assert_eq!(
        prompts
            .iter()
            .filter(|m| m["content"] == "请为本次服务打分：回复 1-5")
            .count(),
        1
    );
    let history = messages_of(&app, id, |m| {
        m.iter()
            .any(|m| m.content.as_deref() == Some("请为本次服务打分：回复 1-5"))
    })
    .await;
    assert_eq!(
        history
            .iter()
            .filter(|m| m.direction == MessageDirection::In)
            .count(),
        2
    );
    visitor_writes(&sim, "wmVisitorA", "5 很满意").await;
    let rated = app
        .wait_for_as(
            &format!("/api/v1/desk/conversations/{id}"),
            30,
            |c: &ConversationView| c.rating == Some(5),
        )
        .await;
    assert_eq!(rated.rating_comment.as_deref(), Some("很满意"));

    // 微信客服 messages are the desk's: no task or message may go through `wecom_kf` directly.
    let direct = app
        .post(
            "/api/v1/tasks",
            &admin,
            json!({ "name": "kf broadcast", "task_type": "broadcast", "channel": "wecom_kf", "account_id": account, "content": "促销", "audience": { "filter": { "account_ids": [account] } } }),
        )
        .await;
    let direct = problem(direct, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert!(fields(&direct).contains(&"channel".to_owned()), "{direct}");
}

#[tokio::test]
async fn entries_handed_back_twice_show_once_and_a_lost_callback_is_caught_up() {
    let (sim, app, account) = kf_instance().await;
    let (_, agents) = desk(&app, account, "round_robin", &[5]).await;
    crate::desk::go(&app, &agents[0].1, "online").await;

    // WeCom hands back the last entries of each pull again: each message shows once.
    sim.control(Method::PUT, "/faults", json!({ "kf_repeat": true }))
        .await;
    let mut msgids = Vec::new();
    for text in ["一", "二", "三"] {
        let written = visitor_writes(&sim, "wmVisitorB", text).await;
        msgids.push(written["msgid"].as_str().unwrap().to_owned());
    }
    let all = wait_conversations(&app, |c| {
        c.iter().any(|c| c.visitor.external_id == "wmVisitorB")
    })
    .await;
    let id = all
        .iter()
        .find(|c| c.visitor.external_id == "wmVisitorB")
        .unwrap()
        .id;
    // Oldest first (the list is newest first).
    let inbound = |m: &[DeskMessageView]| {
        m.iter()
            .rev()
            .filter(|m| m.direction == MessageDirection::In)
            .filter_map(|m| m.content.clone())
            .collect::<Vec<_>>()
    };
    let seen = messages_of(&app, id, |m| inbound(m).len() >= 3).await;
    // A further pull (the next callback) re-reads the repeated tail and still adds nothing.
    visitor_writes(&sim, "wmVisitorB", "四").await;
    let seen_after = messages_of(&app, id, |m| inbound(m).len() >= 4).await;
    assert_eq!(inbound(&seen), ["一", "二", "三"]);
    assert_eq!(inbound(&seen_after), ["一", "二", "三", "四"]);

    // A receptionist answers in the WeCom client: the message shows in the conversation under
    // their userid (once, repeats and all); then the visitor recalls "二" and the receptionist
    // their own message, which stay marked as recalled.
    let written = sim
        .control(
            Method::POST,
            "/kf/servicer_messages",
            json!({ "open_kfid": "wksim0", "external_userid": "wmVisitorB", "servicer_userid": "zhangsan", "content": "我是店长，已为您处理" }),
        )
        .await;
    assert_eq!(written.status(), StatusCode::OK);
    let theirs = written.json::<Value>().await.unwrap()["msgid"]
        .as_str()
        .unwrap()
        .to_owned();
    let by_receptionist = |m: &[DeskMessageView]| {
        m.iter()
            .filter(|m| m.servicer_userid.as_deref() == Some("zhangsan"))
            .cloned()
            .collect::<Vec<_>>()
    };
    let shown = messages_of(&app, id, |m| !by_receptionist(m).is_empty()).await;
    let mirrored = by_receptionist(&shown);
    assert_eq!(mirrored.len(), 1, "{shown:#?}");
    assert_eq!(mirrored[0].direction, MessageDirection::Out);
    assert_eq!(mirrored[0].agent_id, None);
    assert_eq!(mirrored[0].content.as_deref(), Some("我是店长，已为您处理"));
    for (msgid, servicer) in [(&msgids[1], None), (&theirs, Some("zhangsan"))] {
        let r = sim
            .control(
                Method::POST,
                "/kf/recall",
                json!({ "open_kfid": "wksim0", "external_userid": "wmVisitorB", "msgid": msgid, "servicer_userid": servicer }),
            )
            .await;
        assert_eq!(r.status(), StatusCode::OK);
    }
    let recalled = messages_of(&app, id, |m| {
        m.iter().filter(|m| m.recalled_at.is_some()).count() == 2
    })
    .await;
    let mut recalled: Vec<_> = recalled
        .iter()
        .filter(|m| m.recalled_at.is_some())
        .filter_map(|m| m.content.clone())
        .collect();
    recalled.sort();
    assert_eq!(recalled, ["二", "我是店长，已为您处理"]);

    // The callback is lost (the platform unreachable from WeCom): the worker's periodic pull
    // brings the message in anyway, within its interval.
    sim.control(
        Method::PUT,
        "/kf/callback",
        json!({ "url": "http://127.0.0.1:9/unreachable", "token": TOKEN, "aes_key": "x".repeat(43) }),
    )
    .await;
    let lost = sim
        .control(
            Method::POST,
            "/kf/messages",
            json!({ "open_kfid": "wksim0", "external_userid": "wmVisitorB", "content": "五" }),
        )
        .await;
    assert_ne!(
        lost.status(),
        StatusCode::OK,
        "the callback could not be delivered"
    );
    let caught_up = app
        .wait_for_as(
            &format!("/api/v1/desk/conversations/{id}/messages?limit=100"),
            service::desk::kf::SAFETY_SYNC_SECS + 20,
            |p: &Page<DeskMessageView>| inbound(&p.items).len() == 5,
        )
        .await;
    assert_eq!(inbound(&caught_up.items), ["一", "二", "三", "四", "五"]);
}
