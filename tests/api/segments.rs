//! Audience segments: saved filters with live counts, used by the contact list, exports and
//! broadcasts, protected while a task still needs them — and the marketing filters they add
//! (replied or not to a task, opted out, last chat, group members).

use entity::states::TaskStatus;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use service::{
    contacts::{ContactView, groups::GroupView, groups::MemberView},
    instances::accounts::AccountView,
    pagination::Page,
    segments::{SegmentCount, SegmentView},
    tasks::{TaskView, outcomes::TaskOutcomes},
};

use crate::{
    helpers::{TestApp, answer, fields, problem},
    opt_out::inbound,
    tasks::{first_contacts, ready, wait_status},
};

async fn count(app: &TestApp, token: &str, segment: i64) -> SegmentCount {
    app.get_as(&format!("/api/v1/segments/{segment}/count"), token)
        .await
}

async fn create(app: &TestApp, token: &str, body: Value) -> SegmentView {
    answer(
        app.post("/api/v1/segments", token, body).await,
        StatusCode::CREATED,
    )
    .await
}

/// Every contact of a list, walking its pages.
async fn all_contacts(app: &TestApp, token: &str, query: &str) -> Vec<ContactView> {
    app.all_pages(&format!("/api/v1/contacts?{query}"), token)
        .await
}

#[tokio::test]
async fn segments_are_saved_filters_with_live_counts_for_lists_exports_and_broadcasts() {
    let (_sim, app, agent) = ready("").await;
    let admin = app.admin_token().await;
    let everyone = all_contacts(&app, &admin, &format!("instance_id={agent}")).await;
    let account = everyone[0].account_id;
    let of_account = everyone.iter().filter(|c| c.account_id == account).count() as u64;
    assert!(of_account > 0 && of_account < everyone.len() as u64);

    let segment = create(
        &app,
        &admin,
        json!({ "name": "一号客服的客户", "description": "只看一个账号", "filter": { "instance_ids": [agent], "account_ids": [account] } }),
    )
    .await;
    assert_eq!(
        count(&app, &admin, segment.id).await,
        SegmentCount {
            contacts: of_account,
            unsubscribed: 0
        }
    );
    // The contact list and the export narrow to the segment.
    let listed = all_contacts(&app, &admin, &format!("segment_id={}", segment.id)).await;
    assert_eq!(listed.len() as u64, of_account);
    assert!(listed.iter().all(|c| c.account_id == account));
    let export = app
        .get(
            &format!("/api/v1/contacts/export?segment_id={}", segment.id),
            &admin,
        )
        .await
        .text()
        .await
        .unwrap();
    assert_eq!(export.lines().count() as u64, of_account + 1);

    // A draft counts before it is saved; an edit changes what the segment selects at once.
    let one = &everyone[0];
    let draft: SegmentCount = app
        .post_as(
            "/api/v1/segments/count",
            &admin,
            json!({ "q": one.wxid, "instance_ids": [agent] }),
        )
        .await;
    assert_eq!(draft.contacts, 1);
    let edited: SegmentView = answer(
        app.send_json(
            Method::PATCH,
            &format!("/api/v1/segments/{}", segment.id),
            &admin,
            json!({ "filter": { "q": one.wxid, "instance_ids": [agent] }, "description": null }),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert!(edited.description.is_none());
    assert_eq!(count(&app, &admin, segment.id).await.contacts, 1);

    // Bad filters name their field; a taken name is a conflict, also when raced.
    let bad = app
        .post(
            "/api/v1/segments",
            &admin,
            json!({ "name": "坏的", "filter": { "last_chat_after": "2026-12-02T00:00:00Z", "last_chat_before": "2026-12-01T00:00:00Z", "replied": { "task_id": 999999, "replied": true }, "tags_any": (1..=51).collect::<Vec<i64>>() } }),
        )
        .await;
    let mut bad_fields = fields(&problem(bad, StatusCode::UNPROCESSABLE_ENTITY).await);
    bad_fields.sort();
    assert_eq!(
        bad_fields,
        vec![
            "filter.last_chat_before",
            "filter.replied.task_id",
            "filter.tags_any"
        ]
    );
    let racers = (0..6).map(|_| {
        app.post(
            "/api/v1/segments",
            &admin,
            json!({ "name": "同名", "filter": {} }),
        )
    });
    let mut statuses: Vec<u16> = futures_util::future::join_all(racers)
        .await
        .iter()
        .map(|r| r.status().as_u16())
        .collect();
    statuses.sort_unstable();
    assert_eq!(statuses, vec![201, 409, 409, 409, 409, 409]);

    // Reading a segment needs `segments:read`, also through the contact list.
    let reader = app.user_with(&["contacts:read"]).await.1;
    problem(
        app.get(
            &format!("/api/v1/contacts?segment_id={}", segment.id),
            &reader,
        )
        .await,
        StatusCode::FORBIDDEN,
    )
    .await;
    problem(
        app.get("/api/v1/segments", &reader).await,
        StatusCode::FORBIDDEN,
    )
    .await;
    let missing = app.get("/api/v1/contacts?segment_id=999999", &admin).await;
    assert_eq!(
        fields(&problem(missing, StatusCode::UNPROCESSABLE_ENTITY).await),
        vec!["segment_id"]
    );

    // A task that will still run keeps its segment; once cancelled, the segment may go.
    let later: TaskView = answer(
        app.post("/api/v1/tasks", &admin, json!({ "name": "下周", "task_type": "broadcast", "content": "下周见", "audience": { "segment_id": segment.id }, "scheduled_time": (chrono::Utc::now() + chrono::TimeDelta::hours(1)).to_rfc3339() })).await,
        StatusCode::CREATED,
    )
    .await;
    let kept = app
        .delete(&format!("/api/v1/segments/{}", segment.id), &admin)
        .await;
    let kept = problem(kept, StatusCode::CONFLICT).await;
    assert!(
        kept["detail"]
            .as_str()
            .unwrap_or_default()
            .contains(&later.id.to_string())
            || kept.to_string().contains(&later.id.to_string()),
        "{kept}"
    );
    answer::<TaskView>(
        app.post(
            &format!("/api/v1/tasks/{}/cancel", later.id),
            &admin,
            json!({}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    let gone = app
        .delete(&format!("/api/v1/segments/{}", segment.id), &admin)
        .await;
    assert_eq!(gone.status(), StatusCode::NO_CONTENT);
    let audit = app
        .get_json("/api/v1/audit-logs?operation=segment.delete", &admin)
        .await;
    assert_eq!(audit["items"][0]["resource_id"], segment.id.to_string());
    let unknown = app
        .post(
            "/api/v1/tasks",
            &admin,
            json!({ "name": "无", "task_type": "broadcast", "content": "x", "audience": { "segment_id": segment.id } }),
        )
        .await;
    assert_eq!(
        fields(&problem(unknown, StatusCode::UNPROCESSABLE_ENTITY).await),
        vec!["audience.segment_id"]
    );
}

#[tokio::test]
async fn a_follow_up_to_those_who_replied_skips_the_ones_who_opted_out() {
    let (sim, app, agent) = ready("").await;
    let admin = app.admin_token().await;
    let people = first_contacts(&app, agent, 6).await;
    let before_replies = chrono::Utc::now() - chrono::TimeDelta::seconds(1);
    let ids: Vec<i64> = people.iter().map(|c| c.id).collect();
    let first: TaskView = answer(
        app.post("/api/v1/tasks", &admin, json!({ "name": "新品", "task_type": "broadcast", "content": "新品上市，回复 TD 退订", "audience": { "contact_ids": ids }, "rate_per_minute": 6000 })).await,
        StatusCode::CREATED,
    )
    .await;
    wait_status(&app, first.id, TaskStatus::Completed, 60).await;
    inbound(&sim, &app, agent, &people[0], "想了解一下").await;
    inbound(&sim, &app, agent, &people[1], "TD").await;
    inbound(&sim, &app, agent, &people[2], "退订").await;
    app.wait_for_as(
        &format!("/api/v1/tasks/{}/outcomes", first.id),
        20,
        |o: &TaskOutcomes| o.replied == 3 && o.opt_outs == 2,
    )
    .await;

    let replied = create(
        &app,
        &admin,
        json!({ "name": "回复了新品", "filter": { "replied": { "task_id": first.id, "replied": true } } }),
    )
    .await;
    let silent = create(
        &app,
        &admin,
        json!({ "name": "没回复新品", "filter": { "replied": { "task_id": first.id, "replied": false } } }),
    )
    .await;
    assert_eq!(
        count(&app, &admin, replied.id).await,
        SegmentCount {
            contacts: 3,
            unsubscribed: 2
        }
    );
    assert_eq!(count(&app, &admin, silent.id).await.contacts, 3);
    let chatted: SegmentCount = app
        .post_as(
            "/api/v1/segments/count",
            &admin,
            json!({ "instance_ids": [agent], "last_chat_after": before_replies.to_rfc3339() }),
        )
        .await;
    assert_eq!(chatted.contacts, 3);
    let opted: SegmentCount = app
        .post_as(
            "/api/v1/segments/count",
            &admin,
            json!({ "instance_ids": [agent], "unsubscribed": true }),
        )
        .await;
    assert_eq!((opted.contacts, opted.unsubscribed), (2, 2));

    // The follow-up to the segment reaches the one who replied and stayed, and skips the two
    // who opted out, with the reason.
    let follow_up: TaskView = answer(
        app.post("/api/v1/tasks", &admin, json!({ "name": "跟进", "task_type": "broadcast", "content": "感谢回复，送您一张券", "audience": { "segment_id": replied.id }, "rate_per_minute": 6000 })).await,
        StatusCode::CREATED,
    )
    .await;
    let done = wait_status(&app, follow_up.id, TaskStatus::Completed, 60).await;
    assert_eq!((done.counts.success, done.counts.skipped), (1, 2));
    let outcomes: TaskOutcomes = app
        .get_as(&format!("/api/v1/tasks/{}/outcomes", follow_up.id), &admin)
        .await;
    assert_eq!(outcomes.skipped_by_reason.get("unsubscribed"), Some(&2));
}

#[tokio::test]
async fn a_segment_of_group_members_matches_their_contacts_of_the_groups_account() {
    let (_sim, app, agent) = ready("").await;
    let admin = app.admin_token().await;
    let groups: Page<GroupView> = app
        .get_as(
            &format!("/api/v1/groups?instance_id={agent}&limit=1"),
            &admin,
        )
        .await;
    let group = &groups.items[0];
    let members: Page<MemberView> = app
        .get_as(&format!("/api/v1/groups/{}/members", group.id), &admin)
        .await;
    assert!(!members.items.is_empty());
    // A member is also a contact of the instance's other account: that row is another
    // conversation with the same WeChat user, and stays out of the group's segment.
    let accounts: Page<AccountView> = app
        .get_as(&format!("/api/v1/accounts?instance_id={agent}"), &admin)
        .await;
    let other = accounts
        .items
        .iter()
        .find(|a| a.id != group.account_id)
        .unwrap();
    let customer = members
        .items
        .iter()
        .find(|m| m.member_type == "external")
        .unwrap();
    answer::<ContactView>(
        app.post(
            "/api/v1/contacts",
            &admin,
            json!({ "account_id": other.id, "wxid": customer.member_wxid, "nickname": "同一个人" }),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    let (mut expected, mut elsewhere) = (0, 0);
    for m in &members.items {
        let found = all_contacts(&app, &admin, &format!("q={}", m.member_wxid)).await;
        expected += found
            .iter()
            .filter(|c| c.wxid == m.member_wxid && c.account_id == group.account_id)
            .count() as u64;
        elsewhere += found
            .iter()
            .filter(|c| c.wxid == m.member_wxid && c.account_id != group.account_id)
            .count();
    }
    assert!(expected > 0, "the sim's group members are its contacts");
    assert!(
        elsewhere > 0,
        "some members are contacts of another account as well"
    );
    let counted: SegmentCount = app
        .post_as(
            "/api/v1/segments/count",
            &admin,
            json!({ "group_ids": [group.id] }),
        )
        .await;
    assert_eq!(counted.contacts, expected);
}
