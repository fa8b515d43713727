//! Marketing opt-out (退订): keywords in inbound messages, manual opt-out and opt-in, the opt-out
//! list in exports and imports, and broadcasts that skip opted-out contacts while single
//! messages still reach them.

use entity::states::TaskStatus;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use service::{
    contacts::ContactView,
    instances::accounts::AccountView,
    pagination::Page,
    tasks::{TaskView, estimate::AudienceEstimate, outcomes::TaskOutcomes, report::ReceiverView},
};

use crate::{
    helpers::{TestApp, TestSim, answer, fields, problem},
    tasks::{first_contacts, ready, wait_status},
};

/// The sim's agent tells the platform that `contact` wrote `content` to its account.
pub(crate) async fn inbound(
    sim: &TestSim,
    app: &TestApp,
    agent: i64,
    contact: &ContactView,
    content: &str,
) {
    let id = format!("in-{}-{content}", contact.id);
    inbound_with_id(sim, app, agent, contact, content, &id).await;
}

/// `inbound` with the message id the agent reports (the same id twice is one message).
pub(crate) async fn inbound_with_id(
    sim: &TestSim,
    app: &TestApp,
    agent: i64,
    contact: &ContactView,
    content: &str,
    message_id: &str,
) {
    let admin = app.admin_token().await;
    let account: AccountView = app
        .get_as(&format!("/api/v1/accounts/{}", contact.account_id), &admin)
        .await;
    let event = json!({
        "type": "message.received", "account_wxid": account.wxid,
        "data": { "from": contact.wxid, "msgtype": "text", "content": content, "message_id": message_id }
    });
    sim.push_event(&app.agent_callback_url(agent).await, event)
        .await;
}

async fn contact(app: &TestApp, id: i64) -> ContactView {
    app.get_as(&format!("/api/v1/contacts/{id}"), &app.admin_token().await)
        .await
}

/// Sim deliveries to one receiver.
pub(crate) async fn deliveries_to(sim: &TestSim, wxid: &str) -> Vec<String> {
    let all: Vec<Value> = sim
        .control(Method::GET, &format!("/deliveries?to={wxid}"), json!({}))
        .await
        .json()
        .await
        .unwrap();
    all.iter()
        .filter_map(|d| d["content"].as_str().map(str::to_owned))
        .collect()
}

#[tokio::test]
async fn opt_out_keywords_in_replies_take_contacts_out_of_broadcasts() {
    let (sim, app, agent) = ready("[contacts]\nopt_out_reply = \"已为您退订\"\n").await;
    let admin = app.admin_token().await;
    let people = first_contacts(&app, agent, 4).await;
    let (half_width, chinese, chatty, later) = (&people[0], &people[1], &people[2], &people[3]);
    let audience = json!({ "contact_ids": [half_width.id, chinese.id, chatty.id, later.id] });
    // A first broadcast reaches all four; two answer 退订 (the reply goes out on behalf of the
    // broadcast's author), one only asks about it.
    let first: TaskView = answer(
        app.post("/api/v1/tasks", &admin, json!({ "name": "新品", "task_type": "broadcast", "content": "新品上市，回复 TD 退订", "audience": audience, "rate_per_minute": 6000 })).await,
        StatusCode::CREATED,
    )
    .await;
    wait_status(&app, first.id, TaskStatus::Completed, 60).await;
    inbound(&sim, &app, agent, half_width, " ＴＤ ").await;
    inbound(&sim, &app, agent, chinese, "退订").await;
    inbound(&sim, &app, agent, chatty, "请问怎么退订？").await;
    // The same word again (a new message) changes nothing and is not answered twice.
    inbound_with_id(&sim, &app, agent, chinese, "退订", "in-again").await;

    let opted = app
        .wait_for_as(
            &format!("/api/v1/contacts?instance_id={agent}&unsubscribed=true"),
            20,
            |p: &Page<ContactView>| p.items.len() == 2,
        )
        .await;
    let ids: Vec<i64> = opted.items.iter().map(|c| c.id).collect();
    assert!(ids.contains(&half_width.id) && ids.contains(&chinese.id));
    let marked = contact(&app, chinese.id).await;
    assert_eq!(marked.unsubscribe_source.as_deref(), Some("agent"));
    assert_eq!(marked.unsubscribe_message.as_deref(), Some("退订"));
    assert!(contact(&app, chatty.id).await.unsubscribed_at.is_none());
    // The confirmation reply reaches each of them exactly once.
    for c in [half_width, chinese] {
        let wxid = c.wxid.clone();
        let replies = || async {
            deliveries_to(&sim, &wxid)
                .await
                .into_iter()
                .filter(|m| m == "已为您退订")
                .count()
        };
        for _ in 0..100 {
            if replies().await > 0 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
        assert_eq!(replies().await, 1, "{wxid}");
    }

    // Every message counts as a reply to the broadcast that reached them just before.
    // (Inbound events are applied in the background: wait for the last of them.)
    let outcomes: TaskOutcomes = app
        .wait_for_as(
            &format!("/api/v1/tasks/{}/outcomes", first.id),
            20,
            |o: &TaskOutcomes| o.replies == 4,
        )
        .await;
    assert_eq!(
        (
            outcomes.sent,
            outcomes.replied,
            outcomes.replies,
            outcomes.opt_outs
        ),
        (4, 3, 4, 2),
        "{outcomes:?}"
    );
    assert!((outcomes.reply_rate - 0.75).abs() < 1e-9);
    assert!(outcomes.first_reply_p50_seconds.is_some());
    assert_eq!(outcomes.first_reply_histogram["0-1h"], 3);
    let replied: Page<ReceiverView> = app
        .get_as(&format!("/api/v1/tasks/{}/receivers", first.id), &admin)
        .await;
    let of = |c: &ContactView| {
        replied
            .items
            .iter()
            .find(|r| r.contact_id == Some(c.id))
            .cloned()
            .unwrap()
    };
    assert_eq!(of(chinese).reply_count, 2);
    assert!(of(chinese).opted_out_at.is_some() && of(chatty).opted_out_at.is_none());
    assert!(of(later).replied_at.is_none());
    let report = app
        .get(&format!("/api/v1/tasks/{}/report.csv", first.id), &admin)
        .await
        .text()
        .await
        .unwrap();
    assert!(
        report
            .lines()
            .next()
            .unwrap()
            .ends_with("replied_at,replies,opted_out_at,variant")
    );

    // A user opts one more out by hand (with a reason) and one back in.
    let reason = "电话中要求不再接收";
    let manual: ContactView = app
        .post_as(
            &format!("/api/v1/contacts/{}/opt-out", later.id),
            &admin,
            json!({ "reason": reason }),
        )
        .await;
    assert_eq!(manual.unsubscribe_source.as_deref(), Some("manual"));
    assert_eq!(manual.unsubscribe_message.as_deref(), Some(reason));
    let back: ContactView = app
        .post_as(
            &format!("/api/v1/contacts/{}/opt-in", half_width.id),
            &admin,
            json!({}),
        )
        .await;
    assert!(back.unsubscribed_at.is_none() && back.unsubscribe_source.is_none());
    let audit = app
        .get_json("/api/v1/audit-logs?operation=contact.opt_in", &admin)
        .await;
    assert_eq!(audit["items"][0]["resource_id"], half_width.id.to_string());
    let long = app
        .post(
            &format!("/api/v1/contacts/{}/opt-out", later.id),
            &admin,
            json!({ "reason": "很".repeat(501) }),
        )
        .await;
    assert_eq!(
        fields(&problem(long, StatusCode::UNPROCESSABLE_ENTITY).await),
        vec!["reason"]
    );
    let reader = app.user_with(&["contacts:read"]).await.1;
    let denied = app
        .post(
            &format!("/api/v1/contacts/{}/opt-in", later.id),
            &reader,
            json!({}),
        )
        .await;
    problem(denied, StatusCode::FORBIDDEN).await;

    // Now opted out: `chinese` (message) and `later` (manual). The estimate and the broadcast
    // both skip them with the reason; everyone else gets the broadcast.
    let skipped_outcomes = |task: i64| {
        let app = &app;
        let admin = admin.clone();
        async move {
            app.get_as::<TaskOutcomes>(&format!("/api/v1/tasks/{task}/outcomes"), &admin)
                .await
        }
    };
    let estimate: AudienceEstimate = app
        .post_as(
            "/api/v1/tasks/estimate",
            &admin,
            json!({ "audience": audience }),
        )
        .await;
    assert_eq!(
        estimate.skipped.get("unsubscribed"),
        Some(&2),
        "{estimate:?}"
    );
    assert_eq!(estimate.sendable, 2);
    let task: TaskView = answer(
        app.post("/api/v1/tasks", &admin, json!({ "name": "双十二", "task_type": "broadcast", "content": "双十二全场五折", "audience": audience, "rate_per_minute": 6000 })).await,
        StatusCode::CREATED,
    )
    .await;
    let done = wait_status(&app, task.id, TaskStatus::Completed, 60).await;
    assert_eq!((done.counts.success, done.counts.skipped), (2, 2));
    let second = skipped_outcomes(task.id).await;
    assert_eq!(second.skipped_by_reason.get("unsubscribed"), Some(&2));
    assert_eq!((second.sent, second.replied), (2, 0));
    let skipped: Page<ReceiverView> = app
        .get_as(
            &format!("/api/v1/tasks/{}/receivers?status=skipped", task.id),
            &admin,
        )
        .await;
    assert!(
        skipped
            .items
            .iter()
            .all(|r| r.skip_reason.as_deref() == Some("unsubscribed"))
    );
    for c in [chinese, later] {
        assert!(
            !deliveries_to(&sim, &c.wxid)
                .await
                .iter()
                .any(|m| m.contains("双十二"))
        );
    }
    // A single message is service, not marketing: it still reaches an opted-out contact.
    let single: TaskView = answer(
        app.post(
            "/api/v1/messages",
            &admin,
            json!({ "contact_id": later.id, "content": "您的订单已发货" }),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    let sent = wait_status(&app, single.id, TaskStatus::Completed, 30).await;
    assert_eq!(sent.counts.success, 1);
}

#[tokio::test]
async fn the_opt_out_list_is_exported_and_imported() {
    let (_sim, app, agent) = ready("").await;
    let admin = app.admin_token().await;
    let people = first_contacts(&app, agent, 3).await;
    let account = people[0].account_id;
    let same_account: Vec<&ContactView> =
        people.iter().filter(|c| c.account_id == account).collect();
    let csv = format!(
        "wxid,退订\n{},是\n{},否\n",
        same_account[0].wxid, same_account[0].wxid
    );
    let duplicate = app
        .request(
            Method::POST,
            &format!("/api/v1/contacts/import?account_id={account}&format=csv"),
            Some(&admin),
        )
        .body(csv)
        .send()
        .await
        .unwrap();
    assert_eq!(
        fields(&problem(duplicate, StatusCode::UNPROCESSABLE_ENTITY).await),
        vec!["rows[3].wxid"]
    );
    let csv = format!("wxid,unsubscribed\n{},yes\n", same_account[0].wxid);
    let imported = app
        .request(
            Method::POST,
            &format!("/api/v1/contacts/import?account_id={account}&format=csv"),
            Some(&admin),
        )
        .body(csv)
        .send()
        .await
        .unwrap();
    assert_eq!(
        imported.status(),
        StatusCode::OK,
        "{:?}",
        imported.text().await
    );
    let listed = contact(&app, same_account[0].id).await;
    assert_eq!(listed.unsubscribe_source.as_deref(), Some("import"));
    let first_time = listed.unsubscribed_at.unwrap();

    let export = app
        .get("/api/v1/contacts/export?unsubscribed=true", &admin)
        .await
        .text()
        .await
        .unwrap();
    let lines: Vec<&str> = export.lines().collect();
    assert!(
        lines[0].ends_with("unsubscribed_at,unsubscribe_source"),
        "{}",
        lines[0]
    );
    assert_eq!(lines.len(), 2, "{export}");
    assert!(lines[1].contains(&same_account[0].wxid) && lines[1].ends_with(",import"));

    // Importing the list again keeps the first opt-out's time; `否` subscribes again.
    let again = format!("wxid,退订\n{},1\n", same_account[0].wxid);
    app.request(
        Method::POST,
        &format!("/api/v1/contacts/import?account_id={account}&format=csv"),
        Some(&admin),
    )
    .body(again)
    .send()
    .await
    .unwrap();
    assert_eq!(
        contact(&app, same_account[0].id).await.unsubscribed_at,
        Some(first_time)
    );
    let undo = format!("wxid,退订\n{},否\n", same_account[0].wxid);
    app.request(
        Method::POST,
        &format!("/api/v1/contacts/import?account_id={account}&format=csv"),
        Some(&admin),
    )
    .body(undo)
    .send()
    .await
    .unwrap();
    assert!(
        contact(&app, same_account[0].id)
            .await
            .unsubscribed_at
            .is_none()
    );
}

#[tokio::test]
async fn parallel_opt_outs_opt_ins_and_keywords_leave_a_consistent_contact() {
    let (sim, app, agent) = ready("").await;
    let admin = app.admin_token().await;
    let people = first_contacts(&app, agent, 1).await;
    let someone = &people[0];
    let out = format!("/api/v1/contacts/{}/opt-out", someone.id);
    let back = format!("/api/v1/contacts/{}/opt-in", someone.id);
    // Users click opt-out and opt-in at once while the contact writes TD: every request is
    // answered (no 500, no lost update), and the row ends either opted out with its source and
    // time, or subscribed with neither.
    let clicks = (0..8).map(|i| {
        let path = if i % 2 == 0 { &out } else { &back };
        app.post(path, &admin, json!({}))
    });
    let (answers, ()) = tokio::join!(futures_util::future::join_all(clicks), async {
        inbound(&sim, &app, agent, someone, "TD").await;
    });
    for a in &answers {
        assert!(
            a.status().is_success() || a.status() == StatusCode::SERVICE_UNAVAILABLE,
            "{}",
            a.status()
        );
    }
    // Whenever it is read (the keyword's background work may still be landing), the row holds
    // together: each writer sets or clears the three columns in one statement.
    let now = contact(&app, someone.id).await;
    assert_eq!(
        now.unsubscribed_at.is_some(),
        now.unsubscribe_source.is_some(),
        "{now:?}"
    );
    // And the last word wins plainly: one more opt-out by hand.
    let last: ContactView = app.post_as(&out, &admin, json!({})).await;
    assert!(last.unsubscribed_at.is_some() && last.unsubscribe_source.is_some());
}
