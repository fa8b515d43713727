//! Walks every operation of the OpenAPI document: each refuses an anonymous caller (401) and a
//! caller without its declared permission (403), and admits a caller holding exactly that
//! permission. Only the few listed routes are public.

use std::collections::{BTreeMap, BTreeSet};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::TestApp;

const PUBLIC: &[&str] = &[
    "GET /healthz",
    "GET /readyz",
    "GET /metrics",
    "POST /api/v1/auth/login",
    "POST /api/v1/auth/refresh",
    // The console's sign-in and refresh: the same credentials, answered with cookies.
    "POST /api/v1/auth/session",
    "POST /api/v1/auth/session/refresh",
    // Instances deliver events here; each verifies its own signature before reading anything.
    "GET /api/v1/callbacks/wecom/{instance}",
    "POST /api/v1/callbacks/wecom/{instance}",
    "POST /api/v1/callbacks/agent/{instance}",
];
/// Routes that need a session but no permission: ending your own session.
const SESSION_ONLY: &[&str] = &["POST /api/v1/auth/logout"];

struct Operation {
    method: Method,
    path: String,
    label: String,
    /// `None`: public; `Some(None)`: any session; `Some(Some(p))`: permission `p`.
    requirement: Option<Option<String>>,
}

fn operations(doc: &Value) -> Vec<Operation> {
    let mut out = Vec::new();
    for (template, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let label = format!("{} {template}", method.to_uppercase());
            let security = op["security"]
                .as_array()
                .unwrap_or_else(|| panic!("{label} declares no security"));
            let requirement = match security.first().and_then(|s| s.get("bearer")) {
                None => None,
                Some(scopes) => {
                    let scopes = scopes.as_array().unwrap();
                    assert!(scopes.len() <= 1, "{label}: one permission per route");
                    Some(scopes.first().map(|s| s.as_str().unwrap().to_owned()))
                }
            };
            let path = template
                .replace("{id}", "999999")
                .replace("{key}", "some_key")
                .replace("{session_id}", &uuid::Uuid::new_v4().to_string())
                .replace("{instance}", &uuid::Uuid::new_v4().to_string());
            out.push(Operation {
                method: method.to_uppercase().parse().unwrap(),
                path,
                label,
                requirement,
            });
        }
    }
    out
}

async fn call(app: &TestApp, op: &Operation, token: Option<&str>) -> StatusCode {
    let mut request = app.request(op.method.clone(), &op.path, token);
    if matches!(op.method, Method::POST | Method::PUT | Method::PATCH) {
        request = request.json(&json!({}));
    }
    request.send().await.unwrap().status()
}

#[tokio::test]
async fn every_route_denies_by_default() {
    let app = TestApp::spawn().await;
    let doc: Value = app.openapi().await;
    let ops = operations(&doc);
    assert!(ops.len() > 30, "the document lists the API");

    let public: BTreeSet<&str> = ops
        .iter()
        .filter(|o| o.requirement.is_none())
        .map(|o| o.label.as_str())
        .collect();
    assert_eq!(
        public,
        PUBLIC.iter().copied().collect(),
        "the public routes are exactly these"
    );
    let session_only: BTreeSet<&str> = ops
        .iter()
        .filter(|o| o.requirement == Some(None))
        .map(|o| o.label.as_str())
        .collect();
    assert_eq!(session_only, SESSION_ONLY.iter().copied().collect());

    let (_, nobody) = app.user_with(&[]).await;
    let mut holders: BTreeMap<String, String> = BTreeMap::new();
    for op in ops.iter().filter(|o| o.requirement.is_some()) {
        let anonymous = call(&app, op, None).await;
        assert_eq!(
            anonymous,
            StatusCode::UNAUTHORIZED,
            "{} must refuse an anonymous caller",
            op.label
        );
        let Some(Some(permission)) = &op.requirement else {
            continue;
        };
        let denied = call(&app, op, Some(&nobody)).await;
        assert_eq!(
            denied,
            StatusCode::FORBIDDEN,
            "{} must refuse a caller without `{permission}`",
            op.label
        );
        if !holders.contains_key(permission) {
            let (_, token) = app.user_with(&[permission.as_str()]).await;
            holders.insert(permission.clone(), token);
        }
        let allowed = call(&app, op, Some(&holders[permission])).await;
        assert!(
            allowed != StatusCode::UNAUTHORIZED
                && allowed != StatusCode::FORBIDDEN
                && !allowed.is_server_error(),
            "{} must admit a caller holding exactly `{permission}` (got {allowed})",
            op.label
        );
    }
}
