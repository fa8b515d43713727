//! A/B variants: a broadcast's audience split between contents (stable per contact), results
//! per variant with a significance note, and a test phase whose winner — chosen by reply rate
//! or picked by an operator — goes to everyone held back.

use entity::{
    message_receivers, message_task_runs,
    states::{ReceiverStatus, TaskStatus},
};
use reqwest::StatusCode;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, sea_query::Expr};
use serde_json::{Value, json};
use service::{
    contacts::ContactView,
    pagination::Page,
    tasks::{TaskView, outcomes::TaskOutcomes, report::ReceiverView, summary::OutcomeSummary},
};

use crate::{
    helpers::{TestApp, TestSim, answer, fields, problem},
    opt_out::{deliveries_to, inbound},
    tasks::{ready, wait_status},
};

/// Every receiver of a task, walking the pages.
async fn receivers(app: &TestApp, token: &str, task: i64) -> Vec<ReceiverView> {
    app.all_pages(&format!("/api/v1/tasks/{task}/receivers"), token)
        .await
}

fn two_variants() -> Value {
    json!([
        { "name": "短文案", "weight": 50, "content": "A版：{{name}}，新品到店" },
        { "name": "长文案", "weight": 50, "content": "B版：{{name}}，新品到店，回复 1 预约试穿" }
    ])
}

/// The contact a receiver stands for, to push its replies from the sim.
async fn contact_of(app: &TestApp, token: &str, r: &ReceiverView) -> ContactView {
    app.get_as(
        &format!("/api/v1/contacts/{}", r.contact_id.unwrap()),
        token,
    )
    .await
}

/// What the sim delivered to a receiver, one message expected.
async fn delivered_to(sim: &TestSim, wxid: &str) -> String {
    let got = deliveries_to(sim, wxid).await;
    assert_eq!(got.len(), 1, "{wxid}: {got:?}");
    got[0].clone()
}

#[tokio::test]
async fn two_variants_split_the_audience_and_report_reply_rates_each() {
    let (sim, app, agent) = ready("").await;
    let admin = app.admin_token().await;
    let audience = json!({ "filter": { "instance_ids": [agent] } });

    // Weights must add up; variants carry the content, so the task gives none of its own.
    let bad = app
        .post("/api/v1/tasks", &admin, json!({ "name": "坏", "task_type": "broadcast", "content": "x", "audience": audience, "variants": [ { "weight": 60, "content": "a" }, { "weight": 30, "content": "" } ] }))
        .await;
    let mut bad_fields = fields(&problem(bad, StatusCode::UNPROCESSABLE_ENTITY).await);
    bad_fields.sort();
    bad_fields.dedup();
    assert_eq!(bad_fields, vec!["variants", "variants[1].content"]);
    let single = app
        .post("/api/v1/tasks", &admin, json!({ "name": "坏", "task_type": "single", "audience": { "contact_ids": [1] }, "variants": two_variants() }))
        .await;
    assert!(
        fields(&problem(single, StatusCode::UNPROCESSABLE_ENTITY).await)
            .contains(&"variants".to_owned())
    );

    let task: TaskView = answer(
        app.post("/api/v1/tasks", &admin, json!({ "name": "上新 AB", "task_type": "broadcast", "audience": audience, "variants": two_variants(), "rate_per_minute": 6000 })).await,
        StatusCode::CREATED,
    )
    .await;
    assert_eq!(task.variants.as_ref().map(Vec::len), Some(2));
    let done = wait_status(&app, task.id, TaskStatus::Completed, 120).await;
    let all = receivers(&app, &admin, task.id).await;
    assert_eq!(all.len() as i32, done.counts.target);
    let of = |key: &str| -> Vec<&ReceiverView> {
        all.iter()
            .filter(|r| r.variant.as_deref() == Some(key))
            .collect()
    };
    let (a, b) = (of("A"), of("B"));
    assert_eq!(a.len() + b.len(), all.len(), "every receiver has a variant");
    // 50/50 over a couple of hundred contacts: neither side is starved.
    assert!(
        a.len() * 3 > all.len() && b.len() * 3 > all.len(),
        "{} / {}",
        a.len(),
        b.len()
    );
    // Each receiver got its own variant's content, personalised.
    for r in [a[0], a[1], b[0], b[1]] {
        let text = delivered_to(&sim, &r.receiver_wxid).await;
        let expected = if r.variant.as_deref() == Some("A") {
            "A版："
        } else {
            "B版："
        };
        assert!(text.starts_with(expected), "{text}");
        assert!(!text.contains("{{"), "{text}");
    }
    let only_b: Page<ReceiverView> = app
        .get_as(
            &format!("/api/v1/tasks/{}/receivers?variant=B&limit=200", task.id),
            &admin,
        )
        .await;
    assert!(
        only_b
            .items
            .iter()
            .all(|r| r.variant.as_deref() == Some("B"))
    );
    let bad_variant = app
        .get(
            &format!("/api/v1/tasks/{}/receivers?variant=F", task.id),
            &admin,
        )
        .await;
    problem(bad_variant, StatusCode::UNPROCESSABLE_ENTITY).await;

    // Replies: three to B (one of them an opt-out), one to A.
    for (r, text) in [(b[0], "1"), (b[1], "想试穿"), (b[2], "TD"), (a[0], "好的")] {
        let contact = contact_of(&app, &admin, r).await;
        inbound(&sim, &app, agent, &contact, text).await;
    }
    let outcomes: TaskOutcomes = app
        .wait_for_as(
            &format!("/api/v1/tasks/{}/outcomes", task.id),
            20,
            |o: &TaskOutcomes| o.replied == 4,
        )
        .await;
    let by_key = |k: &str| outcomes.variants.iter().find(|v| v.key == k).unwrap();
    assert_eq!(by_key("A").sent as usize, a.len());
    assert_eq!(by_key("B").sent as usize, b.len());
    assert_eq!((by_key("A").replied, by_key("B").replied), (1, 3));
    assert_eq!((by_key("A").opt_outs, by_key("B").opt_outs), (0, 1));
    assert_eq!(by_key("B").name.as_deref(), Some("长文案"));
    let significance = outcomes.significance.clone().unwrap();
    assert_eq!(significance.leader, "B");
    assert!(!significance.significant, "{significance:?}");
    assert!(
        significance.note.contains("not significant"),
        "{significance:?}"
    );
    // The CSV report says which variant each receiver got.
    let report = app
        .get(&format!("/api/v1/tasks/{}/report.csv", task.id), &admin)
        .await
        .text()
        .await
        .unwrap();
    assert!(report.lines().next().unwrap().ends_with(",variant"));
    assert_eq!(
        report.lines().skip(1).filter(|l| l.ends_with(",B")).count(),
        b.len()
    );
    // Over time: the day's results per sending account add up to the task's, and per template
    // the inline text counts as one key.
    let by_account: OutcomeSummary = app
        .get_as(
            "/api/v1/outcomes?group_by=account&timezone=Asia/Shanghai",
            &admin,
        )
        .await;
    assert_eq!(by_account.timezone, "Asia/Shanghai");
    let sent: i64 = by_account.rows.iter().map(|r| r.sent).sum();
    let replied: i64 = by_account.rows.iter().map(|r| r.replied).sum();
    assert_eq!((sent, replied), (outcomes.sent, 4), "{by_account:?}");
    assert!(by_account.rows.len() >= 2 && by_account.rows.iter().all(|r| r.key.is_some()));
    let by_template: OutcomeSummary = app
        .get_as("/api/v1/outcomes?group_by=template", &admin)
        .await;
    assert_eq!(by_template.rows.len(), 1, "{by_template:?}");
    assert_eq!(
        (by_template.rows[0].key, by_template.rows[0].opt_outs),
        (None, 1)
    );
    let bad = app
        .get(
            "/api/v1/outcomes?group_by=account&timezone=Mars/Base&from=2026-12-02T00:00:00Z&to=2026-12-01T00:00:00Z",
            &admin,
        )
        .await;
    let mut bad_fields = fields(&problem(bad, StatusCode::UNPROCESSABLE_ENTITY).await);
    bad_fields.sort();
    assert_eq!(bad_fields, vec!["from", "timezone"]);
    // Splitting the whole audience leaves nothing to decide.
    let no_test = app
        .post(
            &format!("/api/v1/tasks/{}/variants/winner", task.id),
            &admin,
            json!({ "variant": "B" }),
        )
        .await;
    problem(no_test, StatusCode::CONFLICT).await;
}

/// Creates a task with a test on a fifth of the audience and waits until the sample is sent.
async fn tested_task(
    app: &TestApp,
    admin: &str,
    agent: i64,
    name: &str,
) -> (TaskView, Vec<ReceiverView>) {
    let task: TaskView = answer(
        app.post("/api/v1/tasks", admin, json!({ "name": name, "task_type": "broadcast", "audience": { "filter": { "instance_ids": [agent] } }, "variants": two_variants(), "variant_test": { "sample_percent": 20, "decide_after_minutes": 30 }, "rate_per_minute": 6000 })).await,
        StatusCode::CREATED,
    )
    .await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let all = receivers(app, admin, task.id).await;
        let sample_open = all
            .iter()
            .any(|r| r.variant.as_deref() != Some("?") && r.send_status.is_open());
        if !all.is_empty() && !sample_open {
            return (task, all);
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the sample never finished"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn a_test_phase_sends_the_winner_by_reply_rate_to_everyone_held_back() {
    let (sim, app, agent) = ready("").await;
    let admin = app.admin_token().await;
    let (task, all) = tested_task(&app, &admin, agent, "测试期").await;
    let held: Vec<&ReceiverView> = all
        .iter()
        .filter(|r| r.variant.as_deref() == Some("?"))
        .collect();
    let sample: Vec<&ReceiverView> = all
        .iter()
        .filter(|r| r.variant.as_deref() != Some("?"))
        .collect();
    // About a fifth is the sample; the rest waits, unsent, and the task is still running.
    assert!(
        sample.len() * 10 > all.len() && sample.len() * 10 < all.len() * 4,
        "{} of {}",
        sample.len(),
        all.len()
    );
    assert!(
        held.iter()
            .all(|r| r.send_status == ReceiverStatus::Pending)
    );
    for r in &held {
        assert!(deliveries_to(&sim, &r.receiver_wxid).await.is_empty());
    }
    let running: TaskView = app
        .get_as(&format!("/api/v1/tasks/{}", task.id), &admin)
        .await;
    assert_eq!(running.status, TaskStatus::Running);

    // B's sample answers more.
    let sample_b: Vec<&&ReceiverView> = sample
        .iter()
        .filter(|r| r.variant.as_deref() == Some("B"))
        .collect();
    for r in sample_b.iter().take(2) {
        let contact = contact_of(&app, &admin, r).await;
        inbound(&sim, &app, agent, &contact, "我要预约").await;
    }
    app.wait_for_as(
        &format!("/api/v1/tasks/{}/outcomes", task.id),
        20,
        |o: &TaskOutcomes| o.replied == 2,
    )
    .await;
    // Half an hour passes: the run started 31 minutes ago and the held receivers are due.
    let run = running.current_run_id.unwrap();
    let earlier = chrono::Utc::now().naive_utc() - chrono::TimeDelta::minutes(31);
    message_task_runs::Entity::update_many()
        .col_expr(message_task_runs::Column::StartedAt, Expr::value(earlier))
        .filter(message_task_runs::Column::Id.eq(run))
        .exec(&app.ctx.db)
        .await
        .unwrap();
    message_receivers::Entity::update_many()
        .col_expr(
            message_receivers::Column::NextAttemptAt,
            Expr::value(earlier),
        )
        .filter(message_receivers::Column::RunId.eq(run))
        .filter(message_receivers::Column::Variant.eq("?"))
        .exec(&app.ctx.db)
        .await
        .unwrap();

    let done = wait_status(&app, task.id, TaskStatus::Completed, 120).await;
    assert_eq!(done.variant_winner.as_deref(), Some("B"));
    let after = receivers(&app, &admin, task.id).await;
    for r in after.iter().filter(|r| held.iter().any(|h| h.id == r.id)) {
        assert_eq!(r.variant.as_deref(), Some("B"));
        assert_eq!(r.send_status, ReceiverStatus::Sent);
    }
    let text = delivered_to(&sim, &held[0].receiver_wxid).await;
    assert!(text.starts_with("B版："), "{text}");
    let outcomes: TaskOutcomes = app
        .get_as(&format!("/api/v1/tasks/{}/outcomes", task.id), &admin)
        .await;
    let winner: Vec<&str> = outcomes
        .variants
        .iter()
        .filter(|v| v.winner)
        .map(|v| v.key.as_str())
        .collect();
    assert_eq!(winner, vec!["B"]);
    assert_eq!(outcomes.variant_held, 0);
    // Decided once: picking another winner afterwards is refused.
    let late = app
        .post(
            &format!("/api/v1/tasks/{}/variants/winner", task.id),
            &admin,
            json!({ "variant": "A" }),
        )
        .await;
    problem(late, StatusCode::CONFLICT).await;
}

#[tokio::test]
async fn an_operator_may_pick_the_winner_before_the_test_ends() {
    let (sim, app, agent) = ready("").await;
    let admin = app.admin_token().await;
    let (task, all) = tested_task(&app, &admin, agent, "手动选").await;
    let held: Vec<&ReceiverView> = all
        .iter()
        .filter(|r| r.variant.as_deref() == Some("?"))
        .collect();
    assert!(!held.is_empty());
    let unknown = app
        .post(
            &format!("/api/v1/tasks/{}/variants/winner", task.id),
            &admin,
            json!({ "variant": "C" }),
        )
        .await;
    assert_eq!(
        fields(&problem(unknown, StatusCode::UNPROCESSABLE_ENTITY).await),
        vec!["variant"]
    );
    let operator = app.user_with(&["tasks:read"]).await.1;
    let denied = app
        .post(
            &format!("/api/v1/tasks/{}/variants/winner", task.id),
            &operator,
            json!({ "variant": "A" }),
        )
        .await;
    problem(denied, StatusCode::FORBIDDEN).await;
    let picked: TaskView = answer(
        app.post(
            &format!("/api/v1/tasks/{}/variants/winner", task.id),
            &admin,
            json!({ "variant": "A" }),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(picked.variant_winner.as_deref(), Some("A"));
    wait_status(&app, task.id, TaskStatus::Completed, 120).await;
    let text = delivered_to(&sim, &held[0].receiver_wxid).await;
    assert!(text.starts_with("A版："), "{text}");
    let audit = app
        .get_json("/api/v1/audit-logs?operation=task.pick_winner", &admin)
        .await;
    assert_eq!(audit["items"][0]["resource_id"], task.id.to_string());
}
