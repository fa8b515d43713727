//! `Idempotency-Key` on every POST that creates something (the OpenAPI document lists them: the
//! POSTs answering 201 take the header): a malformed key is a 400 naming the header on each of
//! them, and a repeat returns the first answer instead of creating twice — also when the two
//! requests race.

use reqwest::{Method, StatusCode, header::HeaderValue};
use serde_json::{Value, json};

use crate::helpers::{TestApp, fields, problem};

/// The creating POSTs of the document, e.g. `/api/v1/templates`.
fn creating_posts(doc: &Value) -> Vec<String> {
    doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(_, item)| item["post"]["responses"].get("201").is_some())
        .map(|(path, _)| path.clone())
        .collect()
}

#[tokio::test]
async fn every_creating_post_declares_the_key_and_refuses_a_malformed_one() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let doc = app.openapi().await;
    let posts = creating_posts(&doc);
    assert!(posts.len() >= 9, "{posts:?}");
    for path in &posts {
        let op = &doc["paths"][path]["post"];
        let declared = op["parameters"].as_array().is_some_and(|p| {
            p.iter()
                .any(|p| p["name"] == "Idempotency-Key" && p["in"] == "header")
        });
        assert!(declared, "{path} does not declare Idempotency-Key");
        assert!(op["responses"].get("409").is_some(), "{path} has no 409");
        for bad in [&b"\xff\xfe"[..], b"has space", b""] {
            let response = app
                .request(Method::POST, path, Some(&admin))
                .header("Idempotency-Key", HeaderValue::from_bytes(bad).unwrap())
                .json(&json!({}))
                .send()
                .await
                .unwrap();
            let body = problem(response, StatusCode::BAD_REQUEST).await;
            assert_eq!(fields(&body), vec!["Idempotency-Key"], "{path} {bad:?}");
        }
    }
}

#[tokio::test]
async fn a_repeated_create_returns_the_first_answer_and_another_body_is_a_conflict() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let creates = [
        (
            "/api/v1/templates",
            json!({ "name": "欢迎", "message_type": "text", "content": "你好 {{nickname}}" }),
            json!({ "name": "欢迎2", "message_type": "text", "content": "hi" }),
        ),
        (
            "/api/v1/tags",
            json!({ "name": "VIP" }),
            json!({ "name": "VIP2" }),
        ),
        (
            "/api/v1/roles",
            json!({ "name": "ops_once", "display_name": "运维" }),
            json!({ "name": "ops_twice", "display_name": "运维" }),
        ),
    ];
    for (i, (path, body, other)) in creates.iter().enumerate() {
        let key = format!("create-once-{i}");
        let send = |body: &Value| {
            app.request(Method::POST, path, Some(&admin))
                .header("Idempotency-Key", key.as_str())
                .json(body)
                .send()
        };
        let (a, b) = tokio::join!(send(body), send(body));
        let (a, b) = (a.unwrap(), b.unwrap());
        let statuses = [a.status(), b.status()];
        assert!(
            statuses.contains(&StatusCode::CREATED),
            "{path}: {statuses:?}"
        );
        let first: Value = if a.status() == StatusCode::CREATED {
            a
        } else {
            b
        }
        .json()
        .await
        .unwrap();
        let again = send(body).await.unwrap();
        assert_eq!(again.status(), StatusCode::CREATED, "{path}");
        assert_eq!(again.headers()["idempotent-replayed"], "true", "{path}");
        let replayed: Value = again.json().await.unwrap();
        assert_eq!(
            replayed["id"], first["id"],
            "{path}: one record, answered twice"
        );
        let conflict = send(other).await.unwrap();
        assert_eq!(
            fields(&problem(conflict, StatusCode::CONFLICT).await),
            vec!["Idempotency-Key"],
            "{path}"
        );
    }
}
