use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::helpers::TestApp;

#[tokio::test]
async fn probes_answer_and_ready_checks_the_database() {
    let app = TestApp::spawn_with("[metrics]\nbearer_token = \"ops-token\"").await;
    let live = app.anonymous_get("/healthz").await;
    assert_eq!(live.status(), StatusCode::OK);
    let anonymous: Value = app.anonymous_get("/readyz").await.json().await.unwrap();
    assert_eq!(
        anonymous,
        serde_json::json!({ "status": "ready" }),
        "anonymous probes learn up or down, nothing else"
    );
    let ready: Value = app
        .request(reqwest::Method::GET, "/readyz", Some("ops-token"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ready["status"], "ready");
    let components: Vec<&str> = ready["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["component"].as_str().unwrap())
        .collect();
    assert!(components.contains(&"database"));
    if std::env::var("WEWORK_TEST_REDIS_URL").is_ok_and(|u| !u.is_empty()) {
        assert!(
            components.contains(&"redis"),
            "redis is checked when configured"
        );
    }
}

#[tokio::test]
async fn request_ids_are_echoed_or_generated() {
    let app = TestApp::spawn().await;
    let echoed = app
        .request(Method::GET, "/healthz", None)
        .header("x-request-id", "abc-123")
        .send()
        .await
        .unwrap();
    assert_eq!(echoed.headers()["x-request-id"], "abc-123");
    let hostile = app
        .request(Method::GET, "/healthz", None)
        .header("x-request-id", "<script>")
        .send()
        .await
        .unwrap();
    let generated = hostile.headers()["x-request-id"].to_str().unwrap();
    assert_ne!(generated, "<script>");
    assert_eq!(generated.len(), 36, "a UUID replaces an unsafe id");
}

#[tokio::test]
async fn metrics_count_requests_by_route_pattern() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    app.get("/api/v1/users/1", &admin).await;
    let text = app.anonymous_get("/metrics").await.text().await.unwrap();
    assert!(text.contains("wework_http_requests_total"), "{text}");
    assert!(
        text.contains(r#"route="/api/v1/users/{id}""#),
        "labels use the pattern, not the raw path"
    );
}

#[tokio::test]
async fn metrics_can_require_a_token() {
    let app = TestApp::spawn_with("[metrics]\nbearer_token = \"scrape-secret\"").await;
    let anonymous = app.anonymous_get("/metrics").await;
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    let scraper = app
        .request(Method::GET, "/metrics", Some("scrape-secret"))
        .send()
        .await
        .unwrap();
    assert_eq!(scraper.status(), StatusCode::OK);
}

#[tokio::test]
async fn openapi_document_and_interactive_docs_are_served() {
    let app = TestApp::spawn().await;
    let doc: Value = app.openapi().await;
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    assert!(doc["paths"]["/api/v1/users"]["get"].is_object());
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
    // Errors are documented as they are served: problem+json, with the extractors' answers.
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            for (status, response) in operation["responses"].as_object().unwrap() {
                if status.starts_with(['4', '5'])
                    && let Some(content) = response["content"].as_object()
                {
                    assert!(
                        content.keys().all(|k| k == "application/problem+json"),
                        "{method} {path} {status}: {content:?}"
                    );
                }
            }
        }
    }
    let create_task = &doc["paths"]["/api/v1/tasks"]["post"]["responses"];
    for status in ["400", "413", "415", "422", "503"] {
        assert!(create_task[status].is_object(), "POST /tasks {status}");
    }
    assert_eq!(
        doc["paths"]["/api/v1/users"]["get"]["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == "limit")
            .map(|p| (
                p["schema"]["minimum"].clone(),
                p["schema"]["maximum"].clone()
            )),
        Some((1.into(), 200.into())),
        "list limits are declared"
    );
    let docs = app.anonymous_get("/docs").await;
    assert_eq!(docs.status(), StatusCode::OK);
    assert!(
        docs.text().await.unwrap().contains("wework API"),
        "the page embeds this API's document"
    );
}
