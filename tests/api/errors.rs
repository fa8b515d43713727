//! Bad input of every kind gets a problem+json 4xx naming the field; never a 5xx.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::{TestApp, fields, problem};

#[tokio::test]
async fn malformed_json_is_a_400_problem() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let response = app
        .request(Method::POST, "/api/v1/roles", Some(&admin))
        .header("content-type", "application/json")
        .body("{\"name\": \"x\",")
        .send()
        .await
        .unwrap();
    let body = problem(response, StatusCode::BAD_REQUEST).await;
    assert_eq!(body["code"], "malformed_json");
    assert_eq!(body["instance"], "/api/v1/roles");
}

#[tokio::test]
async fn wrong_types_unknown_fields_and_missing_fields_name_the_field() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let cases = [
        (json!({ "name": 5, "display_name": "x" }), "name"),
        (
            json!({ "name": "ok_name", "display_name": "x", "permissions": [1] }),
            "permissions[0]",
        ),
        (
            json!({ "name": "ok_name", "display_name": "x", "colour": "red" }),
            "colour",
        ),
        (json!({ "display_name": "x" }), "name"),
        (json!("just a string"), "body"),
    ];
    for (body, field) in cases {
        let response = app.post("/api/v1/roles", &admin, body.clone()).await;
        let problem = problem(response, StatusCode::UNPROCESSABLE_ENTITY).await;
        assert_eq!(problem["code"], "validation_failed");
        assert_eq!(fields(&problem), vec![field.to_owned()], "{body}");
        assert!(!problem["errors"][0]["message"].as_str().unwrap().is_empty());
    }
    let nested = app
        .post("/api/v1/users", &admin, json!({ "username": "bob_ok", "password": "long-password-1", "roles": [{ "role_id": "one" }] }))
        .await;
    assert_eq!(
        fields(&problem(nested, StatusCode::UNPROCESSABLE_ENTITY).await),
        vec!["roles[0].role_id"]
    );
}

#[tokio::test]
async fn domain_validation_reports_every_bad_field() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let response = app
        .post("/api/v1/users", &admin, json!({ "username": "x".repeat(51), "email": "not-an-email", "password": "short", "nickname": "n".repeat(101) }))
        .await;
    let body = problem(response, StatusCode::UNPROCESSABLE_ENTITY).await;
    let mut got = fields(&body);
    got.sort();
    assert_eq!(got, vec!["email", "nickname", "password", "username"]);
    let role = app
        .post(
            "/api/v1/roles",
            &admin,
            json!({ "name": "ok_name", "display_name": "d".repeat(101) }),
        )
        .await;
    assert_eq!(
        fields(&problem(role, StatusCode::UNPROCESSABLE_ENTITY).await),
        vec!["display_name"]
    );
    let unknown_permission = app
        .post("/api/v1/roles", &admin, json!({ "name": "ok_name", "display_name": "x", "permissions": ["users:read", "nope:nope"] }))
        .await;
    assert_eq!(
        fields(&problem(unknown_permission, StatusCode::UNPROCESSABLE_ENTITY).await),
        vec!["permissions[1]"]
    );
}

#[tokio::test]
async fn huge_bodies_are_refused_with_413() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let huge = json!({ "name": "x".repeat(2 * 1024 * 1024), "display_name": "x" });
    let response = app.post("/api/v1/roles", &admin, huge).await;
    assert_eq!(
        problem(response, StatusCode::PAYLOAD_TOO_LARGE).await["code"],
        "payload_too_large"
    );
    let chunked = app
        .request(Method::POST, "/api/v1/roles", Some(&admin))
        .header("content-type", "application/json")
        .body(streamed_body(3 * 1024 * 1024))
        .send()
        .await
        .unwrap();
    problem(chunked, StatusCode::PAYLOAD_TOO_LARGE).await;
}

/// A body without Content-Length, so the limit must hold while streaming.
fn streamed_body(total: usize) -> reqwest::Body {
    let chunk = 64 * 1024;
    let chunks = (0..total / chunk).map(move |_| Ok::<_, std::io::Error>(vec![b' '; chunk]));
    reqwest::Body::wrap_stream(futures_util::stream::iter(chunks))
}

#[tokio::test]
async fn wrong_content_type_is_415() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let response = app
        .request(Method::POST, "/api/v1/roles", Some(&admin))
        .body("name=x")
        .send()
        .await
        .unwrap();
    assert_eq!(
        problem(response, StatusCode::UNSUPPORTED_MEDIA_TYPE).await["code"],
        "unsupported_media_type"
    );
}

#[tokio::test]
async fn bad_path_and_query_parameters_name_the_parameter() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let bad_id = app.get("/api/v1/users/abc", &admin).await;
    assert_eq!(
        fields(&problem(bad_id, StatusCode::BAD_REQUEST).await),
        vec!["id"]
    );
    let negative = app.get("/api/v1/users/-4", &admin).await;
    assert_eq!(
        fields(&problem(negative, StatusCode::BAD_REQUEST).await),
        vec!["id"]
    );
    let huge = app
        .get("/api/v1/users/99999999999999999999999", &admin)
        .await;
    assert_eq!(
        fields(&problem(huge, StatusCode::BAD_REQUEST).await),
        vec!["id"]
    );
    for (query, field) in [
        ("limit=0", "limit"),
        ("limit=abc", "limit"),
        ("limit=9999", "limit"),
        ("cursor=%%%", "cursor"),
        ("role_id=x", "role_id"),
    ] {
        let response = app.get(&format!("/api/v1/users?{query}"), &admin).await;
        let body = problem(response, StatusCode::UNPROCESSABLE_ENTITY).await;
        assert_eq!(fields(&body), vec![field.to_owned()], "{query}");
    }
    let session = app
        .request(
            Method::DELETE,
            "/api/v1/auth/sessions/not-a-uuid",
            Some(&admin),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(
        fields(&problem(session, StatusCode::BAD_REQUEST).await),
        vec!["session_id"]
    );
}

#[tokio::test]
async fn unknown_routes_and_methods_are_problems() {
    let app = TestApp::spawn().await;
    let missing = app.anonymous_get("/api/v1/nothing-here").await;
    assert_eq!(
        problem(missing, StatusCode::NOT_FOUND).await["code"],
        "route_not_found"
    );
    let method = app
        .request(Method::PUT, "/api/v1/auth/login", None)
        .send()
        .await
        .unwrap();
    assert_eq!(method.headers()["allow"], "POST", "RFC 9110 asks for Allow");
    assert_eq!(
        problem(method, StatusCode::METHOD_NOT_ALLOWED).await["code"],
        "method_not_allowed"
    );
    let admin = app.admin_token().await;
    let method = app
        .request(Method::POST, "/api/v1/users/1", Some(&admin))
        .send()
        .await
        .unwrap();
    assert_eq!(method.headers()["allow"], "GET, PATCH, DELETE");
    // A sibling route's name where an id would go is a wrong method there, not a bad id.
    let method = app
        .request(Method::PATCH, "/api/v1/contacts/tags", Some(&admin))
        .send()
        .await
        .unwrap();
    assert_eq!(method.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(method.headers()["allow"], "POST");
    let bad_id = app
        .request(Method::PATCH, "/api/v1/contacts/abc", Some(&admin))
        .send()
        .await
        .unwrap();
    assert_eq!(
        problem(bad_id, StatusCode::BAD_REQUEST).await["errors"][0]["field"],
        "id"
    );
    let missing_user = app
        .get("/api/v1/users/424242", &app.admin_token().await)
        .await;
    assert_eq!(
        problem(missing_user, StatusCode::NOT_FOUND).await["code"],
        "not_found"
    );
}

/// Two transactions taking the same rows in opposite order: the database picks one to fail
/// (a deadlock on MariaDB and PostgreSQL, a busy write lock on SQLite). That failure is told
/// apart by its codes and answered `503 lock_conflict` with `Retry-After: 1`, not a 500.
#[tokio::test]
async fn a_lost_lock_conflict_is_a_503_to_retry_not_a_500() {
    use actix_web::ResponseError;
    use sea_orm::{ConnectionTrait, DatabaseBackend, Statement, TransactionTrait};

    let app = TestApp::spawn().await;
    let (second, _) = app.user_with(&[]).await;
    let db = &app.ctx.db;
    let backend = db.get_database_backend();
    let lock = |id: i64| {
        let sql = match backend {
            DatabaseBackend::Postgres => format!("SELECT id FROM users WHERE id = {id} FOR UPDATE"),
            _ => format!("UPDATE users SET updated_at = updated_at WHERE id = {id}"),
        };
        Statement::from_string(backend, sql)
    };
    let error = if backend == DatabaseBackend::Sqlite {
        // SQLite has one writer: a second write transaction waits out the busy timeout.
        let first = service::db::begin(db).await.unwrap();
        first.execute_raw(lock(1)).await.unwrap();
        let second = service::db::begin(db).await;
        drop(first);
        let Err(refused) = second else {
            panic!("the second writer is refused")
        };
        service::ServiceError::Database(refused)
    } else {
        let (a, b) = (db.begin().await.unwrap(), db.begin().await.unwrap());
        a.execute_raw(lock(1)).await.unwrap();
        b.execute_raw(lock(second)).await.unwrap();
        let (x, y) = tokio::join!(a.execute_raw(lock(second)), b.execute_raw(lock(1)));
        let lost = x
            .err()
            .or(y.err())
            .expect("one of them is chosen as the deadlock victim");
        service::ServiceError::Database(lost)
    };
    assert!(error.is_lock_conflict(), "{error:?}");
    let answer = api::error::ApiError::from(error);
    assert_eq!(answer.status_code().as_u16(), 503);
    let response = answer.error_response();
    assert_eq!(response.headers().get("retry-after").unwrap(), "1");
}
