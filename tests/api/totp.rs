//! Two-factor authentication: enrolment, login with a code, replay refusal, disable and reset.
//! Codes are computed here by an independent RFC 6238 implementation.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hmac::{Hmac, Mac};
use reqwest::{Method, StatusCode};
use serde_json::json;
use service::auth::two_factor::Enrollment;

use crate::helpers::{TestApp, problem};

fn code(secret_base32: &str, step: u64) -> String {
    let key = data_encoding::BASE32_NOPAD
        .decode(secret_base32.as_bytes())
        .unwrap();
    let mut mac = Hmac::<sha1::Sha1>::new_from_slice(&key).unwrap();
    mac.update(&step.to_be_bytes());
    let hash = mac.finalize().into_bytes();
    let offset = (hash[19] & 0xf) as usize;
    let value = u32::from_be_bytes([
        hash[offset] & 0x7f,
        hash[offset + 1],
        hash[offset + 2],
        hash[offset + 3],
    ]);
    format!("{:06}", value % 1_000_000)
}

/// The current step, after waiting out the last seconds of a step so the server sees the same.
async fn settled_step() -> u64 {
    loop {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        if now % 30 < 26 {
            return now / 30;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

async fn login_with(app: &TestApp, name: &str, code: Option<&str>) -> reqwest::Response {
    app.request(Method::POST, "/api/v1/auth/login", None)
        .json(&json!({ "login": name, "password": "user-test-password-1", "totp_code": code }))
        .send()
        .await
        .unwrap()
}

/// A user with 2FA confirmed using the code of step `now - 1`.
struct Enrolled {
    id: i64,
    name: String,
    secret: String,
    token: String,
    confirm_code: String,
}

async fn enrolled_user(app: &TestApp) -> Enrolled {
    let (id, token) = app.user_with(&["profile:self"]).await;
    let name = app.me(&token).await.username;
    let enrollment: Enrollment = app
        .post_as(
            "/api/v1/auth/totp/enroll",
            &token,
            json!({ "current_password": "user-test-password-1" }),
        )
        .await;
    let secret = enrollment.secret;
    assert!(enrollment.otpauth_uri.starts_with("otpauth://totp/"));
    let step = settled_step().await;
    let wrong = app
        .post(
            "/api/v1/auth/totp/confirm",
            &token,
            json!({ "code": "000000" }),
        )
        .await;
    assert_eq!(wrong.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let confirm_code = code(&secret, step - 1);
    let confirmed = app
        .post(
            "/api/v1/auth/totp/confirm",
            &token,
            json!({ "code": confirm_code }),
        )
        .await;
    assert_eq!(confirmed.status(), StatusCode::NO_CONTENT);
    Enrolled {
        id,
        name,
        secret,
        token,
        confirm_code,
    }
}

#[tokio::test]
async fn login_requires_a_fresh_code_once_enabled() {
    let app = TestApp::spawn().await;
    let Enrolled {
        name,
        secret,
        confirm_code,
        ..
    } = enrolled_user(&app).await;
    let without = login_with(&app, &name, None).await;
    assert_eq!(
        problem(without, StatusCode::UNAUTHORIZED).await["code"],
        "totp_required"
    );

    let step = settled_step().await;
    let replayed_enrolment = login_with(&app, &name, Some(&confirm_code)).await;
    assert_eq!(
        problem(replayed_enrolment, StatusCode::UNAUTHORIZED).await["code"],
        "totp_invalid"
    );

    let fresh = code(&secret, step);
    assert_eq!(
        login_with(&app, &name, Some(&fresh)).await.status(),
        StatusCode::OK
    );
    let replay = login_with(&app, &name, Some(&fresh)).await;
    assert_eq!(
        problem(replay, StatusCode::UNAUTHORIZED).await["code"],
        "totp_invalid",
        "a used code is refused a second time"
    );
    assert_eq!(
        login_with(&app, &name, Some(&code(&secret, step + 1)))
            .await
            .status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn two_concurrent_logins_with_one_code_let_exactly_one_in() {
    let app = TestApp::spawn().await;
    let Enrolled { name, secret, .. } = enrolled_user(&app).await;
    let step = settled_step().await;
    let fresh = code(&secret, step);
    let (a, b) = tokio::join!(
        login_with(&app, &name, Some(&fresh)),
        login_with(&app, &name, Some(&fresh))
    );
    let mut statuses = [a.status(), b.status()];
    statuses.sort();
    assert_eq!(statuses, [StatusCode::OK, StatusCode::UNAUTHORIZED]);
}

#[tokio::test]
async fn disabling_needs_password_and_code_and_admins_can_reset() {
    let app = TestApp::spawn().await;
    let Enrolled {
        id,
        name,
        secret,
        token,
        ..
    } = enrolled_user(&app).await;
    let step = settled_step().await;
    let bad_password = app
        .post(
            "/api/v1/auth/totp/disable",
            &token,
            json!({ "password": "wrong", "code": code(&secret, step) }),
        )
        .await;
    assert_eq!(
        crate::helpers::fields(&problem(bad_password, StatusCode::UNPROCESSABLE_ENTITY).await),
        vec!["password"]
    );
    let disabled = app
        .post(
            "/api/v1/auth/totp/disable",
            &token,
            json!({ "password": "user-test-password-1", "code": code(&secret, step) }),
        )
        .await;
    assert_eq!(disabled.status(), StatusCode::NO_CONTENT);
    assert_eq!(login_with(&app, &name, None).await.status(), StatusCode::OK);

    // Enrol again, then an administrator resets it (lost phone).
    let token = app.token(&name, "user-test-password-1").await;
    let enrollment: Enrollment = app
        .post_as(
            "/api/v1/auth/totp/enroll",
            &token,
            json!({ "current_password": "user-test-password-1" }),
        )
        .await;
    let secret = enrollment.secret.as_str();
    let step = settled_step().await;
    app.post(
        "/api/v1/auth/totp/confirm",
        &token,
        json!({ "code": code(secret, step) }),
    )
    .await;
    assert_eq!(
        login_with(&app, &name, None).await.status(),
        StatusCode::UNAUTHORIZED
    );
    let admin = app.admin_token().await;
    let reset = app
        .post(&format!("/api/v1/users/{id}/reset-totp"), &admin, json!({}))
        .await;
    assert_eq!(reset.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        app.get("/api/v1/auth/me", &token).await.status(),
        StatusCode::UNAUTHORIZED,
        "reset signs the user out"
    );
    assert_eq!(login_with(&app, &name, None).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn seeds_are_sealed_at_rest() {
    use sea_orm::EntityTrait;
    let app = TestApp::spawn().await;
    let Enrolled { id, secret, .. } = enrolled_user(&app).await;
    let row = entity::users::Entity::find_by_id(id)
        .one(&app.ctx.db)
        .await
        .unwrap()
        .unwrap();
    let stored = row.totp_secret.unwrap();
    assert!(!stored.contains(&secret));
    assert!(stored.starts_with("v1."));
    assert_eq!(app.ctx.sealer.open(&stored).unwrap(), secret);
}
