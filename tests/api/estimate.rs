//! The broadcast wizard's estimate: what an audience holds now, why some of it would be skipped,
//! and how long the rate makes it take — and that a task built from it finds the same audience.

use std::collections::BTreeMap;

use entity::states::TaskStatus;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use service::tasks::estimate::AudienceEstimate;

use crate::{
    helpers::{TestApp, answer, fields, problem},
    tasks::{create, first_contacts, ready, wait_status},
};

async fn estimate(app: &TestApp, body: Value) -> AudienceEstimate {
    let admin = app.admin_token().await;
    answer(
        app.post("/api/v1/tasks/estimate", &admin, body).await,
        StatusCode::OK,
    )
    .await
}

#[tokio::test]
async fn the_estimate_counts_the_audience_a_run_then_finds() {
    let (_sim, app, agent) = ready("").await;
    let admin = app.admin_token().await;
    let blocked = first_contacts(&app, agent, 1).await.remove(0);
    let patched = app
        .send_json(
            Method::PATCH,
            &format!("/api/v1/contacts/{}", blocked.id),
            &admin,
            json!({ "is_blocked": true }),
        )
        .await;
    assert_eq!(patched.status(), StatusCode::OK);

    let audience = json!({ "filter": { "instance_ids": [agent] } });
    let guess = estimate(&app, json!({ "audience": audience, "rate_per_minute": 10 })).await;
    assert!(
        guess.skipped.get("blocked").copied().unwrap_or(0) >= 1,
        "{guess:?}"
    );
    assert_eq!(
        guess.receivers,
        guess.sendable + guess.skipped.values().sum::<i64>()
    );
    assert_eq!(guess.accounts, 2);
    // Sends of one account are spaced evenly: its last goes (n - 1) minutes / rate after the first.
    let eta = guess.eta_seconds.unwrap();
    assert!(eta > 0 && eta <= (guess.sendable - 1) * 6, "{guess:?}");

    let task = create(
        &app,
        json!({
            "name": "按预估群发", "task_type": "broadcast", "content": "{{ nickname }} 您好",
            "audience": audience, "rate_per_minute": 6000
        }),
    )
    .await;
    let done = wait_status(&app, task.id, TaskStatus::Completed, 90).await;
    assert_eq!(i64::from(done.counts.target), guess.receivers);
    assert_eq!(i64::from(done.counts.success), guess.sendable);
    assert_eq!(
        i64::from(done.counts.skipped),
        guess.skipped.values().sum::<i64>()
    );
}

#[tokio::test]
async fn named_contacts_are_counted_with_their_skip_reasons() {
    let (_sim, app, agent) = ready("").await;
    let admin = app.admin_token().await;
    let contacts = first_contacts(&app, agent, 200).await;
    let first_account = contacts[0].account_id;
    let same: Vec<i64> = contacts
        .iter()
        .filter(|c| c.account_id == first_account)
        .map(|c| c.id)
        .take(3)
        .collect();
    let other = contacts
        .iter()
        .find(|c| c.account_id != first_account)
        .unwrap();
    let deleted = app
        .request(
            Method::DELETE,
            &format!("/api/v1/contacts/{}", same[2]),
            Some(&admin),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);

    let mut ids = same.clone();
    ids.push(other.id);
    let guess = estimate(
        &app,
        json!({ "audience": { "contact_ids": ids }, "account_id": first_account }),
    )
    .await;
    assert_eq!(guess.receivers, 4);
    assert_eq!(guess.sendable, 2);
    assert_eq!(
        guess.skipped,
        BTreeMap::from([
            ("deleted".to_owned(), 1),
            ("not_a_contact_of_the_sending_account".to_owned(), 1)
        ])
    );
    assert_eq!(guess.accounts, 1);
    assert_eq!(
        guess.eta_seconds,
        Some(3),
        "two sends at 20 a minute: the second 3 s after the first"
    );
}

#[tokio::test]
async fn an_empty_audience_or_a_bad_rate_is_refused_with_the_fields() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let refused = app
        .post(
            "/api/v1/tasks/estimate",
            &admin,
            json!({ "audience": {}, "rate_per_minute": 0 }),
        )
        .await;
    let body = problem(refused, StatusCode::UNPROCESSABLE_ENTITY).await;
    let named = fields(&body);
    assert!(
        named.contains(&"audience".to_owned()) && named.contains(&"rate_per_minute".to_owned()),
        "{body}"
    );
}
