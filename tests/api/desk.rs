//! The customer-service desk end to end: a channel on a sim account, two agents, visitors'
//! messages queuing and assigned by the group's rule, replies through the account, transfer
//! with a reason, close and rating; the live stream across API processes with resume; races
//! for seats; and who may see what.

use std::time::Duration;

use entity::states::{AgentStatus, ConversationState};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use service::{
    contacts::ContactView,
    desk::{
        agents::AgentView,
        conversations::{ConversationView, DeskMessageView, TransferView},
        setup::{DeskChannelView, SkillGroupView},
        visitors::VisitorView,
    },
    pagination::Page,
};

use crate::{
    helpers::{TestApp, TestSim, answer, problem},
    opt_out::{deliveries_to, inbound_with_id},
    tasks::{first_contacts, ready},
};

/// The sim's agent tells the platform that `contact` wrote `content` (message id `id`).
pub(crate) async fn visitor_says(
    sim: &TestSim,
    app: &TestApp,
    agent: i64,
    contact: &ContactView,
    content: &str,
    id: &str,
) {
    inbound_with_id(sim, app, agent, contact, content, id).await;
}

/// A group, a channel on `account` in it, and `capacities.len()` agents (users holding only
/// `desk:work`) with those maximums, all online. Returns the group and each agent with its token.
pub(crate) async fn desk(
    app: &TestApp,
    account: i64,
    rule: &str,
    capacities: &[i32],
) -> (SkillGroupView, Vec<(AgentView, String)>) {
    let admin = app.admin_token().await;
    let group: SkillGroupView = answer(
        app.post(
            "/api/v1/desk/skill-groups",
            &admin,
            json!({ "name": format!("售后-{rule}"), "assignment_rule": rule }),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    let _: DeskChannelView = answer(
        app.post("/api/v1/desk/channels", &admin, json!({
            "name": "官方客服", "account_id": account, "skill_group_id": group.id,
            "welcome_message": "您好，客服马上为您服务", "rating_prompt": "请为本次服务打分：回复 1-5"
        })).await,
        StatusCode::CREATED,
    )
    .await;
    let mut agents = Vec::new();
    for (i, max) in capacities.iter().enumerate() {
        let (user, token) = app.user_with(&["desk:work"]).await;
        let agent: AgentView = answer(
            app.post("/api/v1/desk/agents", &admin, json!({ "user_id": user, "agent_no": format!("KF{:03}", i + 1), "max_concurrent": max, "skill_group_ids": [group.id] })).await,
            StatusCode::CREATED,
        )
        .await;
        assert_eq!(agent.status, AgentStatus::Offline);
        agents.push((agent, token));
    }
    (group, agents)
}

pub(crate) async fn go(app: &TestApp, token: &str, status: &str) -> AgentView {
    answer(
        app.send_json(
            Method::PUT,
            "/api/v1/desk/me/status",
            token,
            json!({ "status": status }),
        )
        .await,
        StatusCode::OK,
    )
    .await
}

pub(crate) async fn conversations(
    app: &TestApp,
    token: &str,
    query: &str,
) -> Vec<ConversationView> {
    let page: Page<ConversationView> = app
        .get_as(&format!("/api/v1/desk/conversations?{query}"), token)
        .await;
    page.items
}

/// Waits until the supervisor's list of open conversations satisfies `done`.
pub(crate) async fn wait_conversations(
    app: &TestApp,
    done: impl Fn(&[ConversationView]) -> bool,
) -> Vec<ConversationView> {
    let admin = app.admin_token().await;
    for _ in 0..150 {
        let all = conversations(app, &admin, "limit=200").await;
        if done(&all) {
            return all;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!(
        "conversations never reached the expected state: {:#?}",
        conversations(app, &admin, "limit=200").await
    );
}

/// A server-sent-event reader over a streaming response.
pub(crate) struct Sse {
    response: reqwest::Response,
    buffer: String,
}

#[derive(Debug, Clone)]
pub(crate) struct Received {
    pub(crate) id: Option<i64>,
    pub(crate) event: String,
    pub(crate) data: Value,
}

impl Sse {
    pub(crate) async fn open(base: &str, token: &str, last_event_id: Option<i64>) -> Self {
        let mut request = reqwest::Client::new()
            .get(format!("{base}/api/v1/desk/events"))
            .bearer_auth(token);
        if let Some(id) = last_event_id {
            request = request.header("Last-Event-ID", id.to_string());
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()["content-type"], "text/event-stream");
        Self {
            response,
            buffer: String::new(),
        }
    }

    /// The next event (keep-alives skipped), or `None` when nothing came within `wait`.
    async fn next(&mut self, wait: Duration) -> Option<Received> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let frame: String = self.buffer.drain(..end + 2).collect();
                let mut received = Received {
                    id: None,
                    event: String::new(),
                    data: Value::Null,
                };
                for line in frame.lines() {
                    if let Some(v) = line.strip_prefix("id: ") {
                        received.id = v.parse().ok();
                    } else if let Some(v) = line.strip_prefix("event: ") {
                        received.event = v.to_owned();
                    } else if let Some(v) = line.strip_prefix("data: ") {
                        received.data = serde_json::from_str(v).unwrap();
                    }
                }
                if received.event.is_empty() {
                    continue;
                }
                return Some(received);
            }
            let chunk = tokio::time::timeout_at(deadline, self.response.chunk())
                .await
                .ok()?;
            match chunk.unwrap() {
                Some(bytes) => self.buffer.push_str(&String::from_utf8_lossy(&bytes)),
                None => return None,
            }
        }
    }

    /// Reads until an event satisfies `want` (within 10 s); returns every event read.
    pub(crate) async fn until(&mut self, want: impl Fn(&Received) -> bool) -> Vec<Received> {
        let mut seen = Vec::new();
        while let Some(event) = self.next(Duration::from_secs(10)).await {
            let done = want(&event);
            seen.push(event);
            if done {
                return seen;
            }
        }
        panic!("the awaited event never came; got {seen:#?}");
    }
}

#[tokio::test]
async fn visitors_queue_get_assigned_answered_transferred_closed_and_rate() {
    let (sim, app, agent) = ready("").await;
    let admin = app.admin_token().await;
    let people = first_contacts(&app, agent, 4).await;
    let account = people[0].account_id;
    let people: Vec<ContactView> = people
        .into_iter()
        .filter(|c| c.account_id == account)
        .collect();
    assert!(
        people.len() >= 3,
        "the sim gives the first account several contacts"
    );
    // Least busy: A (room for 1) and B (room for 2).
    let (group, agents) = desk(&app, account, "least_busy", &[1, 2]).await;
    let ((a, a_token), (b, b_token)) = (&agents[0], &agents[1]);
    let mut a_stream = Sse::open(&app.address, a_token, None).await;
    go(&app, a_token, "online").await;
    go(&app, b_token, "online").await;

    visitor_says(&sim, &app, agent, &people[0], "你好，我的订单没到", "v0-1").await;
    let first = a_stream.until(|e| e.event == "conversation.assigned").await;
    assert!(
        first.iter().any(|e| e.event == "conversation.opened"),
        "{first:#?}"
    );
    let assigned = first.last().unwrap();
    assert_eq!(
        assigned.data["data"]["agent_id"], a.id,
        "A was given a conversation longest ago (never)"
    );
    let conv_a = assigned.data["conversation_id"].as_i64().unwrap();
    visitor_says(&sim, &app, agent, &people[1], "在吗", "v1-1").await;
    visitor_says(&sim, &app, agent, &people[2], "咨询一下", "v2-1").await;
    let all = wait_conversations(&app, |all| {
        all.len() == 3 && all.iter().all(|c| c.state == ConversationState::Assigned)
    })
    .await;
    let load = |agent: i64| all.iter().filter(|c| c.agent_id == Some(agent)).count();
    assert_eq!(
        (load(a.id), load(b.id)),
        (1, 2),
        "nobody goes past their maximum"
    );
    // The same message delivered twice shows once; the welcome went out once per conversation.
    visitor_says(&sim, &app, agent, &people[0], "你好，我的订单没到", "v0-1").await;
    visitor_says(&sim, &app, agent, &people[0], "单号 123", "v0-2").await;
    let messages = app
        .wait_for_as(
            &format!("/api/v1/desk/conversations/{conv_a}/messages"),
            20,
            |p: &Page<DeskMessageView>| {
                p.items
                    .iter()
                    .any(|m| m.content.as_deref() == Some("单号 123"))
            },
        )
        .await;
    let inbound: Vec<_> = messages
        .items
        .iter()
        .filter(|m| m.direction == entity::states::MessageDirection::In)
        .collect();
    assert_eq!(inbound.len(), 2, "{:#?}", messages.items);

    // A sees their own conversation with its unread count, not B's.
    let mine = conversations(&app, a_token, "").await;
    assert_eq!(mine.len(), 1);
    assert_eq!(mine[0].unread, 2);
    let of_b = all.iter().find(|c| c.agent_id == Some(b.id)).unwrap();
    problem(
        app.get(&format!("/api/v1/desk/conversations/{}", of_b.id), a_token)
            .await,
        StatusCode::NOT_FOUND,
    )
    .await;
    problem(
        app.post(
            &format!("/api/v1/desk/conversations/{}/reply", of_b.id),
            a_token,
            json!({ "content": "hi" }),
        )
        .await,
        StatusCode::NOT_FOUND,
    )
    .await;

    // A replies (accepting it); the text reaches the visitor through the account.
    let reply: DeskMessageView = answer(
        app.post(
            &format!("/api/v1/desk/conversations/{conv_a}/reply"),
            a_token,
            json!({ "content": "您好，我来查一下" }),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    assert_eq!(reply.agent_id, Some(a.id));
    let read: ConversationView = answer(
        app.post(
            &format!("/api/v1/desk/conversations/{conv_a}/read"),
            a_token,
            json!({}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!((read.state, read.unread), (ConversationState::Active, 0));
    assert!(read.first_response_at.is_some());
    // The welcome and the reply are two sends in no promised order: wait for both.
    let wxid = people[0].wxid.clone();
    for _ in 0..100 {
        let delivered = deliveries_to(&sim, &wxid).await;
        if ["您好，我来查一下", "您好，客服马上为您服务"]
            .iter()
            .all(|text| delivered.iter().any(|m| m == text))
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let delivered = deliveries_to(&sim, &wxid).await;
    assert_eq!(
        delivered
            .iter()
            .filter(|m| *m == "您好，我来查一下")
            .count(),
        1,
        "{delivered:?}"
    );
    assert_eq!(
        delivered
            .iter()
            .filter(|m| *m == "您好，客服马上为您服务")
            .count(),
        1,
        "{delivered:?}"
    );

    // A transfers it to B with a reason: B now holds 3 (a person chose them), A holds none.
    problem(
        app.post(
            &format!("/api/v1/desk/conversations/{conv_a}/transfer"),
            a_token,
            json!({ "agent_id": b.id }),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    let moved: ConversationView = answer(
        app.post(
            &format!("/api/v1/desk/conversations/{conv_a}/transfer"),
            a_token,
            json!({ "agent_id": b.id, "reason": "物流问题转专员" }),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(
        (moved.agent_id, moved.state),
        (Some(b.id), ConversationState::Assigned)
    );
    let gone = a_stream
        .until(|e| e.event == "conversation.transferred")
        .await;
    assert_eq!(gone.last().unwrap().data["conversation_id"], conv_a);
    let transfers: Vec<TransferView> = app
        .get_as(
            &format!("/api/v1/desk/conversations/{conv_a}/transfers"),
            b_token,
        )
        .await;
    assert_eq!(transfers.len(), 1);
    assert_eq!(
        (
            transfers[0].from_agent_id,
            transfers[0].to_agent_id,
            transfers[0].reason.as_str()
        ),
        (Some(a.id), Some(b.id), "物流问题转专员")
    );
    let overview: Value = app.get_json("/api/v1/desk/overview", &admin).await;
    let seats: Vec<(i64, i64)> = overview["agents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| {
            (
                x["id"].as_i64().unwrap(),
                x["active_conversations"].as_i64().unwrap(),
            )
        })
        .collect();
    assert!(
        seats.contains(&(a.id, 0)) && seats.contains(&(b.id, 3)),
        "{seats:?}"
    );
    assert!(conversations(&app, a_token, "").await.is_empty());

    // B closes it; the visitor answers the rating prompt, which rates instead of reopening.
    let closed: ConversationView = answer(
        app.post(
            &format!("/api/v1/desk/conversations/{conv_a}/close"),
            b_token,
            json!({}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(closed.state, ConversationState::Closed);
    problem(
        app.post(
            &format!("/api/v1/desk/conversations/{conv_a}/close"),
            b_token,
            json!({}),
        )
        .await,
        StatusCode::CONFLICT,
    )
    .await;
    visitor_says(&sim, &app, agent, &people[0], "5 很满意", "v0-3").await;
    let rated = app
        .wait_for_as(
            &format!("/api/v1/desk/conversations/{conv_a}"),
            20,
            |c: &ConversationView| c.rating.is_some(),
        )
        .await;
    assert_eq!(
        (rated.rating, rated.rating_comment.as_deref()),
        (Some(5), Some("很满意"))
    );
    // The history finds it by state, visitor, rating and when it opened.
    let ids = |list: Vec<ConversationView>| list.into_iter().map(|c| c.id).collect::<Vec<_>>();
    let visitor_id = rated.visitor.id;
    assert_eq!(
        ids(conversations(
            &app,
            &admin,
            &format!("state=closed&visitor_id={visitor_id}")
        )
        .await),
        [conv_a]
    );
    assert_eq!(
        ids(conversations(&app, &admin, "rating_max=5").await),
        [conv_a]
    );
    assert!(conversations(&app, &admin, "rating_max=4").await.is_empty());
    let opened = rated.opened_at;
    let at = |t: chrono::DateTime<chrono::Utc>| {
        t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
            .replace('+', "%2B")
    };
    let window = format!(
        "visitor_id={visitor_id}&opened_from={}&opened_to={}",
        at(opened),
        at(opened + chrono::TimeDelta::milliseconds(1))
    );
    assert_eq!(ids(conversations(&app, &admin, &window).await), [conv_a]);
    let later = format!(
        "visitor_id={visitor_id}&opened_from={}",
        at(opened + chrono::TimeDelta::seconds(1))
    );
    assert!(conversations(&app, &admin, &later).await.is_empty());
    // Writing again opens a new conversation, sticky rules aside queued for the group.
    visitor_says(&sim, &app, agent, &people[0], "还有一个问题", "v0-4").await;
    let again = wait_conversations(&app, |all| all.len() == 4).await;
    let newest = &again[0];
    assert_eq!(newest.visitor.external_id, people[0].wxid);
    assert_ne!(newest.id, conv_a);
    assert_eq!(newest.skill_group_id, group.id);
    let visitor: VisitorView = app
        .get_as(
            &format!("/api/v1/desk/visitors/{}", newest.visitor.id),
            a_token,
        )
        .await;
    assert_eq!(
        (visitor.visits, visitor.contact_id),
        (2, Some(people[0].id))
    );

    // Going offline gives back what A had not accepted; the work log keeps every change.
    go(&app, a_token, "offline").await;
    let log: Value = app
        .get_json(&format!("/api/v1/desk/agents/{}/work-log", a.id), a_token)
        .await;
    let moves: Vec<(&str, &str)> = log["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["from_status"].as_str().unwrap(),
                e["to_status"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(moves, [("online", "offline"), ("offline", "online")]);
    problem(
        app.get(&format!("/api/v1/desk/agents/{}/work-log", b.id), a_token)
            .await,
        StatusCode::NOT_FOUND,
    )
    .await;
}

#[tokio::test]
async fn the_desk_needs_its_permissions_and_checks_its_input() {
    let app = TestApp::spawn().await;
    let (_, nobody) = app.user_with(&["contacts:read"]).await;
    for path in [
        "/api/v1/desk/conversations",
        "/api/v1/desk/events",
        "/api/v1/desk/me",
        "/api/v1/desk/skill-groups",
    ] {
        problem(app.get(path, &nobody).await, StatusCode::FORBIDDEN).await;
    }
    let (_, worker) = app.user_with(&["desk:work"]).await;
    problem(
        app.post("/api/v1/desk/skill-groups", &worker, json!({ "name": "x" }))
            .await,
        StatusCode::FORBIDDEN,
    )
    .await;
    problem(
        app.post(
            "/api/v1/desk/quick-replies",
            &worker,
            json!({ "title": "x", "body": "y", "shared": true }),
        )
        .await,
        StatusCode::FORBIDDEN,
    )
    .await;
    // Not an agent yet: told so, not a 500.
    let not_agent = problem(
        app.get("/api/v1/desk/me", &worker).await,
        StatusCode::CONFLICT,
    )
    .await;
    assert!(
        not_agent["detail"]
            .as_str()
            .unwrap()
            .contains("not set up as an agent"),
        "{not_agent}"
    );
    let admin = app.admin_token().await;
    let bad = problem(
        app.post(
            "/api/v1/desk/skill-groups",
            &admin,
            json!({ "name": " ", "inactivity_timeout_secs": 5 }),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    let fields = crate::helpers::fields(&bad);
    assert!(
        fields.contains(&"name".to_owned())
            && fields.contains(&"inactivity_timeout_secs".to_owned()),
        "{bad}"
    );
    let group: SkillGroupView = answer(
        app.post(
            "/api/v1/desk/skill-groups",
            &admin,
            json!({ "name": "售前" }),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    problem(
        app.post(
            "/api/v1/desk/skill-groups",
            &admin,
            json!({ "name": "售前" }),
        )
        .await,
        StatusCode::CONFLICT,
    )
    .await;
    let bad = problem(
        app.post("/api/v1/desk/agents", &admin, json!({ "user_id": 999999, "agent_no": "no spaces", "max_concurrent": 0, "skill_group_ids": [group.id, 424242] })).await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    let fields = crate::helpers::fields(&bad);
    for f in [
        "user_id",
        "agent_no",
        "max_concurrent",
        "skill_group_ids[1]",
    ] {
        assert!(fields.contains(&f.to_owned()), "{f}: {bad}");
    }
    // Quick replies use only the variables they know.
    let (user, _) = app.user_with(&[]).await;
    let _: AgentView = answer(
        app.post(
            "/api/v1/desk/agents",
            &admin,
            json!({ "user_id": user, "agent_no": "KF9" }),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    problem(
        app.post(
            "/api/v1/desk/agents",
            &admin,
            json!({ "user_id": user, "agent_no": "KF10" }),
        )
        .await,
        StatusCode::CONFLICT,
    )
    .await;
    let bad = problem(
        app.post(
            "/api/v1/desk/quick-replies",
            &worker,
            json!({ "title": "问候", "body": "{{ password }} 您好" }),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert_eq!(crate::helpers::fields(&bad), ["body"]);
    let bad = problem(
        app.get("/api/v1/desk/conversations?rating_max=6", &admin)
            .await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert_eq!(crate::helpers::fields(&bad), ["rating_max"]);
    // The group has no channel and no conversation: it can go.
    let deleted = app
        .delete(&format!("/api/v1/desk/skill-groups/{}", group.id), &admin)
        .await;
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
}

/// Contacts of the sim's first account, as many as it has (up to `n`).
pub(crate) async fn visitors_of_one_account(
    app: &TestApp,
    agent: i64,
    n: usize,
) -> Vec<ContactView> {
    let people = first_contacts(app, agent, 200).await;
    let account = people[0].account_id;
    people
        .into_iter()
        .filter(|c| c.account_id == account)
        .take(n)
        .collect()
}

#[tokio::test]
async fn agents_racing_for_the_queue_never_exceed_their_seats_nor_share_a_conversation() {
    let (sim, app, agent) = ready("").await;
    let people = visitors_of_one_account(&app, agent, 6).await;
    assert!(people.len() >= 5, "{}", people.len());
    let (_, agents) = desk(&app, people[0].account_id, "round_robin", &[2, 2]).await;
    for (i, person) in people.iter().enumerate() {
        visitor_says(&sim, &app, agent, person, "排队中", &format!("race-{i}")).await;
    }
    let queued = wait_conversations(&app, |all| {
        all.len() == people.len() && all.iter().all(|c| c.state == ConversationState::Queued)
    })
    .await;
    // Both agents come online and, at the same moment, try to claim every queued conversation.
    let mut attempts = Vec::new();
    let app = &app;
    for (_, token) in &agents {
        attempts.push(Box::pin(async move {
            go(app, token, "online").await;
        })
            as std::pin::Pin<Box<dyn std::future::Future<Output = ()>>>);
        for c in &queued {
            let path = format!("/api/v1/desk/conversations/{}/accept", c.id);
            attempts.push(Box::pin(async move {
                let status = app.post(&path, token, json!({})).await.status();
                assert!(
                    status == StatusCode::OK
                        || status == StatusCode::CONFLICT
                        || status == StatusCode::NOT_FOUND,
                    "{status}"
                );
            }));
        }
    }
    futures_util::future::join_all(attempts).await;
    let admin = app.admin_token().await;
    let all = conversations(app, &admin, "limit=200").await;
    let desk_agents: Vec<AgentView> = app.get_as("/api/v1/desk/agents", &admin).await;
    let mut taken = 0;
    for (mine, _) in &agents {
        let holding = all.iter().filter(|c| c.agent_id == Some(mine.id)).count();
        let counted = desk_agents
            .iter()
            .find(|a| a.id == mine.id)
            .unwrap()
            .active_conversations;
        assert!(holding <= 2, "agent {} holds {holding}", mine.id);
        assert_eq!(
            holding as i32, counted,
            "the seat counter matches what they hold"
        );
        taken += holding;
    }
    assert_eq!(
        taken, 4,
        "four seats, five or more visitors: every seat is used"
    );
    assert_eq!(
        all.iter()
            .filter(|c| c.state == ConversationState::Queued && c.agent_id.is_none())
            .count(),
        all.len() - 4
    );
}

#[tokio::test]
async fn the_live_stream_moves_to_another_api_process_without_losing_or_repeating_an_event() {
    use crate::helpers::processes::{ConfigFile, kill, spawn_api};
    let (sim, app, agent) = ready("").await;
    let people = visitors_of_one_account(&app, agent, 1).await;
    let (_, agents) = desk(&app, people[0].account_id, "sticky", &[5]).await;
    let (me, token) = &agents[0];
    go(&app, token, "online").await;
    let (mut other, base) = spawn_api(&ConfigFile::of(&app)).await;
    let mut there = Sse::open(&base, token, None).await;
    visitor_says(&sim, &app, agent, &people[0], "第一条", "live-1").await;
    visitor_says(&sim, &app, agent, &people[0], "第二条", "live-2").await;
    let content = |e: &Received| e.data["data"]["content"].as_str().map(str::to_owned);
    let mut got = there
        .until(|e| e.event == "message.received" && content(e).as_deref() == Some("第二条"))
        .await;
    assert!(
        got.iter()
            .any(|e| e.event == "conversation.assigned" && e.data["agent_id"] == me.id),
        "{got:#?}"
    );
    // The process serving the stream dies mid-chat; the visitor keeps writing.
    kill(&mut other).await;
    visitor_says(&sim, &app, agent, &people[0], "第三条", "live-3").await;
    visitor_says(&sim, &app, agent, &people[0], "第四条", "live-4").await;
    let last = got.iter().filter_map(|e| e.id).max().unwrap();
    let mut here = Sse::open(&app.address, token, Some(last)).await;
    got.extend(
        here.until(|e| e.event == "message.received" && content(e).as_deref() == Some("第四条"))
            .await,
    );
    let ids: Vec<i64> = got.iter().filter_map(|e| e.id).collect();
    let mut unique = ids.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(unique.len(), ids.len(), "no event twice: {ids:?}");
    let said: Vec<String> = got
        .iter()
        .filter(|e| e.event == "message.received")
        .filter_map(content)
        .collect();
    assert_eq!(said, ["第一条", "第二条", "第三条", "第四条"]);
}

/// Alerts of `status` about the skill group.
async fn group_alerts(app: &TestApp, status: &str, group: i64) -> Vec<Value> {
    let admin = app.admin_token().await;
    let page: Value = app
        .get_json(&format!("/api/v1/alerts?status={status}"), &admin)
        .await;
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| {
            a["source_type"] == "skill_group"
                && a["source_id"].as_str().and_then(|s| s.parse::<i64>().ok()) == Some(group)
        })
        .cloned()
        .collect()
}

#[tokio::test]
async fn a_long_queue_raises_an_alert_and_service_levels_reach_the_metric_store() {
    use crate::telemetry_servers::{VictoriaMetrics, spool_dir};

    let vm = VictoriaMetrics::start().await;
    let sim = TestSim::small();
    let mut app = TestApp::spawn_with(&format!(
        "[worker]\nalert_interval_secs = 1\n[influxdb]\nurl = \"{}\"\nflush_interval_ms = 100\nspool_dir = \"{}\"\n",
        vm.url,
        spool_dir()
    ))
    .await;
    let agent = app.with_synced_agent(&sim).await;
    let admin = app.admin_token().await;
    let people = visitors_of_one_account(&app, agent, 1).await;
    let (group, agents) = desk(&app, people[0].account_id, "round_robin", &[1]).await;
    let (_, token) = &agents[0];
    let _: Value = answer(
        app.post("/api/v1/alert-rules", &admin, json!({ "name": "客服排队", "rule_type": "desk_queue_wait", "threshold": 1, "cooldown_seconds": 0 })).await,
        StatusCode::CREATED,
    )
    .await;
    // Nobody is online: the visitor waits, and past a second of waiting the rule fires.
    visitor_says(&sim, &app, agent, &people[0], "有人吗", "wait-1").await;
    for _ in 0..100 {
        if !group_alerts(&app, "ACTIVE", group.id).await.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let raised = group_alerts(&app, "ACTIVE", group.id).await;
    assert_eq!(raised.len(), 1, "one alert for the group");
    // The agent comes online and takes it: the alert resolves on its own.
    go(&app, token, "online").await;
    for _ in 0..100 {
        if !group_alerts(&app, "RESOLVED", group.id).await.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert_eq!(group_alerts(&app, "RESOLVED", group.id).await.len(), 1);
    let mine = conversations(&app, token, "").await;
    let id = mine[0].id;
    let _: DeskMessageView = answer(
        app.post(
            &format!("/api/v1/desk/conversations/{id}/reply"),
            token,
            json!({ "content": "在的" }),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    let _: ConversationView = answer(
        app.post(
            &format!("/api/v1/desk/conversations/{id}/close"),
            token,
            json!({}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    // One point per moment: the wait (over a second), the first response, the close.
    assert!(app.ctx.telemetry.flush().await);
    let series =
        |field: &str| format!("desk_conversations_{field}{{skill_group=\"{}\"}}", group.id);
    let waited = vm.samples(&series("queue_wait_ms"), 1, 30).await;
    assert!(waited.iter().any(|(_, v)| *v >= 1000.0), "{waited:?}");
    assert_eq!(
        vm.samples(&series("first_response_ms"), 1, 30).await.len(),
        1
    );
    let closed = vm.samples(&series("closed"), 1, 30).await;
    assert_eq!(closed.iter().map(|(_, v)| *v as i64).sum::<i64>(), 1);
    assert_eq!(vm.samples(&series("handle_ms"), 1, 30).await.len(), 1);
}

#[tokio::test]
async fn the_event_log_keeps_a_week_and_a_resume_point_must_be_an_event_id() {
    use sea_orm::{ActiveValue::Set, EntityTrait, PaginatorTrait};
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let bad = problem(
        app.get("/api/v1/desk/events?after=-1", &admin).await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert_eq!(crate::helpers::fields(&bad), ["after"]);
    let now = chrono::Utc::now().naive_utc();
    for age in [chrono::TimeDelta::days(8), chrono::TimeDelta::days(6)] {
        entity::desk_events::Entity::insert(entity::desk_events::ActiveModel {
            kind: Set("agent.status".into()),
            payload: Set(json!({})),
            created_at: Set(now - age),
            ..Default::default()
        })
        .exec(&app.ctx.db)
        .await
        .unwrap();
    }
    let swept = service::housekeeping::sweep(&app.ctx).await.unwrap();
    assert_eq!(
        swept.desk_events, 1,
        "only the event older than a week goes"
    );
    assert_eq!(
        entity::desk_events::Entity::find()
            .count(&app.ctx.db)
            .await
            .unwrap(),
        1
    );
}
