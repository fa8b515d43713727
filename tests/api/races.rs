//! The same record created by several requests at once: one wins with 201, every other one is
//! told 409 — never a 500 — however the database settles the race (the application's own check,
//! or the unique index when both requests passed the check together).

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::TestApp;

/// Sends `body` to `path` from `n` requests at once; the statuses, sorted.
async fn race(app: &TestApp, token: &str, path: &str, body: Value, n: usize) -> Vec<u16> {
    let requests = (0..n).map(|_| app.post(path, token, body.clone()));
    let mut statuses: Vec<u16> = futures_util::future::join_all(requests)
        .await
        .iter()
        .map(|r| r.status().as_u16())
        .collect();
    statuses.sort_unstable();
    statuses
}

#[tokio::test]
async fn duplicate_creates_at_once_make_one_record_and_conflicts() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let one_wins = |statuses: &[u16]| {
        statuses.iter().filter(|s| **s == 201).count() == 1
            && statuses.iter().all(|s| [201, 409].contains(s))
    };
    let cases = [
        (
            "/api/v1/tags",
            json!({ "name": "并发标签", "group_name": "测试" }),
        ),
        (
            "/api/v1/roles",
            json!({ "name": "race_role", "display_name": "并发角色" }),
        ),
        (
            "/api/v1/users",
            json!({ "username": "race_user", "password": "race-user-password-1" }),
        ),
        (
            "/api/v1/segments",
            json!({ "name": "并发分组", "filter": {} }),
        ),
    ];
    for (path, body) in cases {
        let statuses = race(&app, &admin, path, body, 6).await;
        assert!(one_wins(&statuses), "{path}: {statuses:?}");
    }
    // The loser is told what happened, as a problem document.
    let again = app
        .post(
            "/api/v1/roles",
            &admin,
            json!({ "name": "race_role", "display_name": "并发角色" }),
        )
        .await;
    assert_eq!(again.status(), StatusCode::CONFLICT);
}
