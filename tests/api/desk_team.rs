//! Colleagues serving one visitor together (the seed's service group chat): the conversation's
//! agent brings a colleague in (once, however many invitations race), who follows it live, reads
//! the shared history, writes to the visitor and keeps an unread count of their own; only the
//! conversation's agent transfers or closes it; a member who leaves sees it no more.

use reqwest::{Method, StatusCode};
use serde_json::json;
use service::desk::{
    agents::AgentView,
    conversations::{ConversationView, DeskMessageView},
};

use crate::{
    desk::{Sse, desk, go, visitor_says, visitors_of_one_account, wait_conversations},
    helpers::{TestApp, answer, fields, problem},
    tasks::ready,
};

fn unread_of(conversation: &ConversationView, agent: i64) -> Option<i32> {
    conversation
        .members
        .iter()
        .find(|m| m.agent_id == agent)
        .map(|m| m.unread)
}

async fn conversation(app: &TestApp, token: &str, id: i64) -> ConversationView {
    app.get_as(&format!("/api/v1/desk/conversations/{id}"), token)
        .await
}

#[tokio::test]
async fn colleagues_serve_one_visitor_together_each_with_their_own_unread_count() {
    let (sim, app, agent_instance) = ready("").await;
    let people = visitors_of_one_account(&app, agent_instance, 1).await;
    let (group, agents) = desk(&app, people[0].account_id, "round_robin", &[3, 3, 3]).await;
    for (_, token) in &agents {
        go(&app, token, "online").await;
    }
    visitor_says(
        &sim,
        &app,
        agent_instance,
        &people[0],
        "我的快递丢了",
        "team-1",
    )
    .await;
    let all = wait_conversations(&app, |c| c.iter().any(|c| c.agent_id.is_some())).await;
    let served = all.iter().find(|c| c.agent_id.is_some()).unwrap().clone();
    let id = served.id;
    let owner_index = agents
        .iter()
        .position(|(a, _)| Some(a.id) == served.agent_id)
        .unwrap();
    let (owner, owner_token) = &agents[owner_index];
    let others: Vec<&(AgentView, String)> = agents
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != owner_index)
        .map(|(_, a)| a)
        .collect();
    let (colleague, colleague_token) = others[0];
    let (_, stranger_token) = others[1];
    answer::<ConversationView>(
        app.post(
            &format!("/api/v1/desk/conversations/{id}/accept"),
            owner_token,
            json!({}),
        )
        .await,
        StatusCode::OK,
    )
    .await;

    // Before joining, the colleague cannot see it; their stream is open already.
    problem(
        app.get(&format!("/api/v1/desk/conversations/{id}"), colleague_token)
            .await,
        StatusCode::NOT_FOUND,
    )
    .await;
    let mut stream = Sse::open(&app.address, colleague_token, None).await;

    // Five invitations of the same colleague at once make one membership.
    let members_path = format!("/api/v1/desk/conversations/{id}/members");
    let invite = || {
        app.post(
            &members_path,
            owner_token,
            json!({ "agent_id": colleague.id }),
        )
    };
    let answers = futures_util::future::join_all((0..5).map(|_| invite())).await;
    let statuses: Vec<StatusCode> = answers.iter().map(reqwest::Response::status).collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == StatusCode::OK).count(),
        1,
        "{statuses:?}"
    );
    assert!(
        statuses
            .iter()
            .all(|s| *s == StatusCode::OK || *s == StatusCode::CONFLICT),
        "{statuses:?}"
    );
    let now = conversation(&app, owner_token, id).await;
    assert_eq!(now.members.len(), 1);
    assert_eq!(unread_of(&now, colleague.id), Some(0));

    // They follow it live: the join, then the visitor's next message.
    visitor_says(
        &sim,
        &app,
        agent_instance,
        &people[0],
        "单号 SF123",
        "team-2",
    )
    .await;
    let content = |e: &crate::desk::Received| e.data["data"]["content"].as_str().map(str::to_owned);
    let got = stream
        .until(|e| e.event == "message.received" && content(e).as_deref() == Some("单号 SF123"))
        .await;
    assert!(
        got.iter().any(|e| e.event == "conversation.member_joined"),
        "{got:#?}"
    );
    let theirs: ConversationView = conversation(&app, colleague_token, id).await;
    assert_eq!(unread_of(&theirs, colleague.id), Some(1));
    let listed: service::pagination::Page<ConversationView> = app
        .get_as("/api/v1/desk/conversations", colleague_token)
        .await;
    assert!(listed.items.iter().any(|c| c.id == id));

    // Both write to the visitor; each message is unread for the other member, not its author.
    let from_colleague: DeskMessageView = answer(
        app.post(
            &format!("/api/v1/desk/conversations/{id}/reply"),
            colleague_token,
            json!({ "content": "我来帮您查物流" }),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    assert_eq!(from_colleague.agent_id, Some(colleague.id));
    answer::<DeskMessageView>(
        app.post(
            &format!("/api/v1/desk/conversations/{id}/reply"),
            owner_token,
            json!({ "content": "同事在帮您查" }),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    let now = conversation(&app, owner_token, id).await;
    assert_eq!(unread_of(&now, colleague.id), Some(2));
    let owners_unread = now.unread;
    assert!(
        owners_unread > 0,
        "the visitor's messages count for the agent too"
    );

    // Reading zeroes the member's count only.
    let read: ConversationView = answer(
        app.post(
            &format!("/api/v1/desk/conversations/{id}/read"),
            colleague_token,
            json!({}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(unread_of(&read, colleague.id), Some(0));
    assert_eq!(
        read.unread, owners_unread,
        "the conversation's own count is its agent's"
    );

    // Only the conversation's agent (or a supervisor) moves or closes it; strangers see nothing.
    for action in ["close", "transfer"] {
        problem(
            app.post(
                &format!("/api/v1/desk/conversations/{id}/{action}"),
                colleague_token,
                json!({ "skill_group_id": group.id, "reason": "不该能转" }),
            )
            .await,
            StatusCode::NOT_FOUND,
        )
        .await;
    }
    problem(
        app.get(&format!("/api/v1/desk/conversations/{id}"), stranger_token)
            .await,
        StatusCode::NOT_FOUND,
    )
    .await;
    problem(
        app.post(
            &format!("/api/v1/desk/conversations/{id}/members"),
            colleague_token,
            json!({ "agent_id": owner.id }),
        )
        .await,
        StatusCode::NOT_FOUND,
    )
    .await;
    let bad = problem(
        app.post(
            &format!("/api/v1/desk/conversations/{id}/members"),
            owner_token,
            json!({ "agent_id": owner.id }),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert_eq!(fields(&bad), ["agent_id"]);
    let bad = problem(
        app.post(
            &format!("/api/v1/desk/conversations/{id}/members"),
            owner_token,
            json!({ "agent_id": 999_999 }),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert_eq!(fields(&bad), ["agent_id"]);

    // The colleague leaves: the conversation is out of their sight again.
    let left: ConversationView = answer(
        app.send_json(
            Method::DELETE,
            &format!("/api/v1/desk/conversations/{id}/members/{}", colleague.id),
            colleague_token,
            json!({}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert!(left.members.is_empty());
    problem(
        app.get(&format!("/api/v1/desk/conversations/{id}"), colleague_token)
            .await,
        StatusCode::NOT_FOUND,
    )
    .await;
    problem(
        app.send_json(
            Method::DELETE,
            &format!("/api/v1/desk/conversations/{id}/members/{}", colleague.id),
            owner_token,
            json!({}),
        )
        .await,
        StatusCode::NOT_FOUND,
    )
    .await;

    // A closed conversation takes no members.
    answer::<ConversationView>(
        app.post(
            &format!("/api/v1/desk/conversations/{id}/close"),
            owner_token,
            json!({}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    let refused = problem(
        app.post(
            &format!("/api/v1/desk/conversations/{id}/members"),
            owner_token,
            json!({ "agent_id": colleague.id }),
        )
        .await,
        StatusCode::CONFLICT,
    )
    .await;
    assert_eq!(fields(&refused), ["state"]);

    // The health view's service levels count it: opened, answered, queued, handled, closed.
    let overview: service::monitoring::Overview = app
        .get_as("/api/v1/monitoring/overview", &app.admin_token().await)
        .await;
    let desk = overview.desk;
    assert_eq!(
        (desk.opened, desk.closed, desk.queued, desk.serving),
        (1, 1, 0, 0),
        "{desk:?}"
    );
    assert_eq!(desk.agents_online, 3);
    assert!(desk.first_response_p50_ms.is_some() && desk.queue_wait_p50_ms.is_some());
    assert!(desk.handle_avg_ms.is_some());
    assert_eq!(desk.closed_per_agent, Some(1.0));
    assert_eq!((desk.rating_avg, desk.ratings), (None, 0));
}

#[tokio::test]
async fn visitors_are_filed_in_groups_that_never_point_at_a_removed_one() {
    use service::desk::{visitor_groups::VisitorGroupView, visitors::VisitorView};
    let (sim, app, agent_instance) = ready("").await;
    let admin = app.admin_token().await;
    let people = visitors_of_one_account(&app, agent_instance, 1).await;
    let (_, agents) = desk(&app, people[0].account_id, "round_robin", &[3]).await;
    let token = &agents[0].1;
    visitor_says(&sim, &app, agent_instance, &people[0], "你好", "group-1").await;
    let all = wait_conversations(&app, |c| !c.is_empty()).await;
    let visitor = all[0].visitor.id;

    // Managers name groups (names are unique); agents only read them.
    let vip: VisitorGroupView = answer(
        app.post(
            "/api/v1/desk/visitor-groups",
            &admin,
            json!({ "name": "VIP 客户", "description": "年消费过万" }),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    let taken = problem(
        app.post(
            "/api/v1/desk/visitor-groups",
            &admin,
            json!({ "name": "VIP 客户" }),
        )
        .await,
        StatusCode::CONFLICT,
    )
    .await;
    assert_eq!(fields(&taken), ["name"]);
    problem(
        app.post("/api/v1/desk/visitor-groups", token, json!({ "name": "x" }))
            .await,
        StatusCode::FORBIDDEN,
    )
    .await;

    // An agent files the visitor; the group lists them and counts them.
    let filed: VisitorView = answer(
        app.send_json(
            Method::PATCH,
            &format!("/api/v1/desk/visitors/{visitor}"),
            token,
            json!({ "group_id": vip.id }),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(filed.group_id, Some(vip.id));
    let members: service::pagination::Page<VisitorView> = app
        .get_as(&format!("/api/v1/desk/visitors?group_id={}", vip.id), token)
        .await;
    assert_eq!(
        members.items.iter().map(|v| v.id).collect::<Vec<_>>(),
        [visitor]
    );
    let groups: Vec<VisitorGroupView> = app.get_as("/api/v1/desk/visitor-groups", token).await;
    assert_eq!(groups.iter().find(|g| g.id == vip.id).unwrap().visitors, 1);
    let nowhere = problem(
        app.send_json(
            Method::PATCH,
            &format!("/api/v1/desk/visitors/{visitor}"),
            token,
            json!({ "group_id": 999_999 }),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert_eq!(fields(&nowhere), ["group_id"]);

    // Filing into a group while it is removed: the visitor ends up in it only if it survives.
    let doomed: VisitorGroupView = answer(
        app.post(
            "/api/v1/desk/visitor-groups",
            &admin,
            json!({ "name": "待清理" }),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    let (visitor_path, group_path) = (
        format!("/api/v1/desk/visitors/{visitor}"),
        format!("/api/v1/desk/visitor-groups/{}", doomed.id),
    );
    let file = app.send_json(
        Method::PATCH,
        &visitor_path,
        token,
        json!({ "group_id": doomed.id }),
    );
    let remove = app.send_json(Method::DELETE, &group_path, &admin, json!({}));
    let (filed, removed) = tokio::join!(file, remove);
    assert_eq!(removed.status(), StatusCode::NO_CONTENT);
    assert!(
        [StatusCode::OK, StatusCode::UNPROCESSABLE_ENTITY].contains(&filed.status()),
        "filed first, or told the group is gone: {}",
        filed.status()
    );
    let after: VisitorView = app
        .get_as(&format!("/api/v1/desk/visitors/{visitor}"), token)
        .await;
    assert_ne!(
        after.group_id,
        Some(doomed.id),
        "no visitor points at a removed group"
    );

    // Taking them out, and removing a group, leave visitors ungrouped.
    let out: VisitorView = answer(
        app.send_json(
            Method::PATCH,
            &format!("/api/v1/desk/visitors/{visitor}"),
            token,
            json!({ "group_id": vip.id }),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(out.group_id, Some(vip.id));
    let gone = app
        .send_json(
            Method::DELETE,
            &format!("/api/v1/desk/visitor-groups/{}", vip.id),
            &admin,
            json!({}),
        )
        .await;
    assert_eq!(gone.status(), StatusCode::NO_CONTENT);
    let after: VisitorView = app
        .get_as(&format!("/api/v1/desk/visitors/{visitor}"), token)
        .await;
    assert_eq!(after.group_id, None);
}
