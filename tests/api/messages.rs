//! Single messages and their conversation, templates with previews, and customer mass messages
//! that wait for members to confirm them.

use entity::states::{MessageDirection, ReceiverStatus, TaskStatus};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use service::{
    messages::MessageView,
    pagination::Page,
    tasks::{TaskView, control::RemindReport, report::ReceiverView},
    templates::{Preview, TemplateView},
};

use crate::{
    helpers::{TestApp, TestSim, answer, fields, problem},
    tasks::{assert_consistent, create, delivered, first_contacts, ready, wait_status},
};

#[tokio::test]
async fn single_messages_are_sent_and_read_back_as_a_conversation() {
    let (sim, app, agent) = ready("").await;
    let admin = app.admin_token().await;
    let contact = first_contacts(&app, agent, 1).await.remove(0);
    let queued = app
        .post(
            "/api/v1/messages",
            &admin,
            json!({ "contact_id": contact.id, "content": "{{ name }}，您的订单已发货" }),
        )
        .await;
    let task: TaskView = answer(queued, StatusCode::CREATED).await;
    wait_status(&app, task.id, TaskStatus::Completed, 30).await;
    let conversation: Page<MessageView> = app
        .get_as(
            &format!("/api/v1/messages?contact_id={}", contact.id),
            &admin,
        )
        .await;
    let message = &conversation.items[0];
    assert_eq!(message.direction, MessageDirection::Out);
    assert!(
        message
            .message_content
            .as_deref()
            .unwrap()
            .ends_with("您的订单已发货")
    );
    assert_eq!(delivered(&sim).await["delivered"], 1);
    let both = app
        .post(
            "/api/v1/messages",
            &admin,
            json!({ "contact_id": 1, "group_id": 1, "content": "x" }),
        )
        .await;
    assert_eq!(
        fields(&problem(both, StatusCode::UNPROCESSABLE_ENTITY).await),
        vec!["contact_id"]
    );
}

#[tokio::test]
async fn templates_are_checked_and_previewed() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let undeclared = app.post("/api/v1/templates", &admin, json!({ "name": "x", "message_type": "text", "content": "{{ nickname }} {{ secret_sale }}" })).await;
    assert_eq!(
        fields(&problem(undeclared, StatusCode::UNPROCESSABLE_ENTITY).await),
        vec!["content"]
    );
    let broken = app
        .post(
            "/api/v1/templates",
            &admin,
            json!({ "name": "x", "message_type": "text", "content": "{{ nickname " }),
        )
        .await;
    assert_eq!(
        fields(&problem(broken, StatusCode::UNPROCESSABLE_ENTITY).await),
        vec!["content"]
    );
    let link_without_url = app.post("/api/v1/templates", &admin, json!({ "name": "x", "message_type": "link", "content": "", "payload": { "title": "t" } })).await;
    assert_eq!(
        fields(&problem(link_without_url, StatusCode::UNPROCESSABLE_ENTITY).await),
        vec!["payload.url"]
    );
    let created: TemplateView = app
        .post_as("/api/v1/templates", &admin, json!({ "name": "生日", "category": "关怀", "message_type": "text", "content": "{{ name }}，生日快乐！送您 {{ points }} 积分", "variables": [{ "name": "points", "type": "number", "default": 100 }] }))
        .await;
    assert_eq!(
        created.preview_content.as_deref(),
        Some("王伟，生日快乐！送您 100 积分")
    );
    let preview: Preview = app
        .post_as(
            &format!("/api/v1/templates/{}/preview", created.id),
            &admin,
            json!({ "sample": { "name": "小李", "points": 500 } }),
        )
        .await;
    assert_eq!(preview.content, "小李，生日快乐！送您 500 积分");
    let unknown_contact = app
        .post(
            &format!("/api/v1/templates/{}/preview", created.id),
            &admin,
            json!({ "contact_id": 999999999 }),
        )
        .await;
    problem(unknown_contact, StatusCode::NOT_FOUND).await;
    let wrong_type = app.post("/api/v1/tasks", &admin, json!({ "name": "x", "task_type": "batch", "template_id": created.id, "variables": { "points": "many" }, "audience": { "contact_ids": [1] } })).await;
    assert_eq!(
        fields(&problem(wrong_type, StatusCode::UNPROCESSABLE_ENTITY).await),
        vec!["variables.points"]
    );
}

#[tokio::test]
async fn a_template_previews_with_a_real_contacts_fields() {
    let (_sim, app, agent) = ready("").await;
    let admin = app.admin_token().await;
    let contact = first_contacts(&app, agent, 1).await.remove(0);
    let template: TemplateView = app
        .post_as("/api/v1/templates", &admin, json!({ "name": "问候", "message_type": "text", "content": "{{ nickname }}（{{ wxid }}）：{{ offer }}", "variables": [{ "name": "offer", "type": "string", "default": "九折" }] }))
        .await;
    let preview: Preview = app
        .post_as(
            &format!("/api/v1/templates/{}/preview", template.id),
            &admin,
            json!({ "contact_id": contact.id, "sample": { "offer": "八折" } }),
        )
        .await;
    let nickname = contact.nickname.clone().unwrap_or_default();
    assert_eq!(
        preview.content,
        format!("{nickname}（{}）：八折", contact.wxid)
    );
    // The editor previews what it holds before saving, checked as a save would check it.
    let draft: Preview = app
        .post_as(
            "/api/v1/templates/preview",
            &admin,
            json!({ "message_type": "text", "content": "{{ name }}：{{ gift }}{{ remark }}", "variables": [{ "name": "gift", "type": "string", "default": "红包" }], "contact_id": contact.id }),
        )
        .await;
    let name = contact
        .remark
        .clone()
        .or(contact.nickname.clone())
        .unwrap_or(contact.wxid.clone());
    let remark = contact.remark.clone().unwrap_or_default();
    assert_eq!(draft.content, format!("{name}：红包{remark}"));
    let undeclared = app
        .post(
            "/api/v1/templates/preview",
            &admin,
            json!({ "message_type": "text", "content": "{{ secret }}" }),
        )
        .await;
    assert_eq!(
        fields(&problem(undeclared, StatusCode::UNPROCESSABLE_ENTITY).await),
        vec!["content"]
    );
    let reader = app.user_with(&["templates:read"]).await.1;
    let no_contacts = app
        .post(
            "/api/v1/templates/preview",
            &reader,
            json!({ "message_type": "text", "content": "hi", "contact_id": contact.id }),
        )
        .await;
    problem(no_contacts, StatusCode::FORBIDDEN).await;
}

/// The sim's customer mass messages, oldest first.
async fn mass_messages(sim: &TestSim) -> Vec<Value> {
    sim.control(Method::GET, "/mass", json!({}))
        .await
        .json()
        .await
        .unwrap()
}

#[tokio::test]
async fn customer_mass_messages_wait_for_members_then_settle_from_wecom_results() {
    let sim = TestSim::small();
    let mut app = TestApp::spawn_with(
        "[dispatch]\nchunk_size = 5\nmass_chunk_size = 50\nconfirm_poll_secs = 1\n",
    )
    .await;
    let wecom = app.with_synced_wecom(&sim).await;
    let admin = app.admin_token().await;
    let body = |content: &str| json!({ "name": "新品上市", "task_type": "broadcast", "channel": "customer_mass", "content": content, "audience": { "filter": { "instance_ids": [wecom] } }, "rate_per_minute": 6000 });

    let personal = app
        .post("/api/v1/tasks", &admin, body("{{ nickname }}，新品上市"))
        .await;
    assert_eq!(
        fields(&problem(personal, StatusCode::UNPROCESSABLE_ENTITY).await),
        vec!["content"]
    );

    let task = create(&app, body("新品上市，到店出示本消息享八折")).await;
    let id = task.id;
    let waiting = wait_status(&app, id, TaskStatus::AwaitingConfirmation, 60).await;
    assert_eq!(waiting.counts.awaiting, 240);
    assert_eq!(waiting.counts.success, 0);
    assert_consistent(&waiting);

    let mass = mass_messages(&sim).await;
    assert!(
        (2..=8).contains(&mass.len()),
        "one mass message per chunk and member, not per customer: {}",
        mass.len()
    );
    let targets: usize = mass
        .iter()
        .map(|m| m["targets"].as_array().unwrap().len())
        .sum();
    assert_eq!(targets, 240);

    for _ in 0..3 {
        let reminded: RemindReport = app
            .post_as(&format!("/api/v1/tasks/{id}/remind"), &admin, json!({}))
            .await;
        assert_eq!(reminded.reminded, mass.len(), "{reminded:?}");
    }
    let limited: RemindReport = app
        .post_as(&format!("/api/v1/tasks/{id}/remind"), &admin, json!({}))
        .await;
    assert_eq!(limited.reminded, 0);
    assert_eq!(limited.limited, mass.len(), "3 reminders per 24 hours");

    // A customer leaves before the member confirms; every member but the last confirms.
    let gone = mass[0]["targets"][0].clone();
    sim.control(Method::POST, "/contacts/remove", json!({ "wxids": [gone] }))
        .await;
    let (last, confirmed) = mass.split_last().unwrap();
    for m in confirmed {
        let msgid = m["msgid"].as_str().unwrap();
        sim.control(Method::POST, &format!("/mass/{msgid}/confirm"), json!({}))
            .await;
    }
    let confirmed_targets: usize = confirmed
        .iter()
        .map(|m| m["targets"].as_array().unwrap().len())
        .sum();
    let last_targets = last["targets"].as_array().unwrap().len();
    let count = |n: usize| i32::try_from(n).unwrap();
    let settled = app
        .wait_for_as(&format!("/api/v1/tasks/{id}"), 30, |t: &TaskView| {
            // Every read while members confirm adds up: one confirmation moves a receiver
            // from awaiting to success in one step, never through "pending".
            assert_eq!(t.counts.pending, 0, "{t:?}");
            t.counts.awaiting == count(last_targets)
        })
        .await;
    assert_eq!(settled.status, TaskStatus::AwaitingConfirmation);
    assert_eq!(settled.counts.success, count(confirmed_targets - 1));
    assert_eq!(settled.counts.failed, 1);
    assert_consistent(&settled);
    let failed: Page<ReceiverView> = app
        .get_as(
            &format!("/api/v1/tasks/{id}/receivers?status=failed"),
            &admin,
        )
        .await;
    assert_eq!(failed.items[0].send_status, ReceiverStatus::Failed);
    assert_eq!(failed.items[0].receiver_wxid, gone);
    assert_eq!(failed.items[0].error_code.as_deref(), Some("not_friend"));

    // Cancelling withdraws what the last member never confirmed.
    let cancelled: TaskView = app
        .post_as(&format!("/api/v1/tasks/{id}/cancel"), &admin, json!({}))
        .await;
    assert_eq!(cancelled.status, TaskStatus::Cancelled);
    assert_eq!(cancelled.counts.awaiting, 0);
    assert_eq!(cancelled.counts.skipped, count(last_targets));
    assert_consistent(&cancelled);
    let last_now = mass_messages(&sim)
        .await
        .into_iter()
        .find(|m| m["msgid"] == last["msgid"])
        .unwrap();
    assert_eq!(last_now["status"], "cancelled");
    assert_eq!(
        delivered(&sim).await["delivered"],
        confirmed_targets - 1,
        "only confirmed messages reach customers"
    );
}
