//! Login, lockout, throttling, token rotation and reuse detection, logout and sessions.

use entity::states::UserStatus;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use service::{
    auth::{TokenPair, sessions::SessionView},
    rbac::users::UserView,
};

use crate::helpers::{ADMIN_PASSWORD, TestApp, answer, problem};

#[tokio::test]
async fn login_by_name_or_email_and_me() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let created = app
        .post("/api/v1/users", &admin, json!({ "username": "carol", "email": "Carol@Example.com", "password": "carol-password-1" }))
        .await;
    let created: UserView = answer(created, StatusCode::CREATED).await;
    assert_eq!(created.username, "carol");
    let by_email = app.token("CAROL@example.com", "carol-password-1").await;
    let me = app.get("/api/v1/auth/me", &by_email).await;
    // carol holds no role, so even her own profile is denied: deny by default.
    assert_eq!(me.status(), StatusCode::FORBIDDEN);
    let me: Value = app.get_json("/api/v1/auth/me", &admin).await;
    assert_eq!(me["user"]["username"], "admin");
    assert!(
        me["permissions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p == "roles:create")
    );
}

/// A user holding only `profile:self` (password `user-test-password-1`): their id and name.
async fn signed_up_user(app: &TestApp) -> (i64, String) {
    let (user_id, _) = app.user_with(&["profile:self"]).await;
    let admin = app.admin_token().await;
    let user: UserView = app
        .get_as(&format!("/api/v1/users/{user_id}"), &admin)
        .await;
    (user_id, user.username)
}

#[tokio::test]
async fn wrong_passwords_lock_the_account_until_an_admin_unlocks_it() {
    let app = TestApp::spawn().await;
    let (user_id, name) = signed_up_user(&app).await;
    let admin = app.admin_token().await;
    for _ in 0..5 {
        let wrong = app.login(&name, "not-the-password").await;
        assert_eq!(
            problem(wrong, StatusCode::UNAUTHORIZED).await["code"],
            "invalid_credentials"
        );
    }
    let locked = app.login(&name, "user-test-password-1").await;
    assert!(locked.headers().get("retry-after").is_some());
    let body = problem(locked, StatusCode::LOCKED).await;
    assert_eq!(body["code"], "account_locked");
    assert!(
        body["retry_after"].as_u64().unwrap() > 800,
        "about 15 minutes"
    );

    let view: UserView = app
        .get_as(&format!("/api/v1/users/{user_id}"), &admin)
        .await;
    assert!(view.locked_until.is_some());
    let audit: Value = app
        .get_json("/api/v1/audit-logs?operation=user.locked", &admin)
        .await;
    assert_eq!(
        audit["items"].as_array().unwrap().len(),
        1,
        "the lock is a security event"
    );

    let unlocked = app
        .post(
            &format!("/api/v1/users/{user_id}/unlock"),
            &admin,
            json!({}),
        )
        .await;
    let unlocked: UserView = answer(unlocked, StatusCode::OK).await;
    assert!(unlocked.locked_until.is_none());
    assert_eq!(
        app.login(&name, "user-test-password-1").await.status(),
        StatusCode::OK
    );

    let history: Value = app
        .get_json(
            &format!("/api/v1/login-logs?user_id={user_id}&limit=7"),
            &admin,
        )
        .await;
    let reasons: Vec<&str> = history["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["reason"].as_str().unwrap_or("ok"))
        .collect();
    assert_eq!(
        reasons,
        vec![
            "ok",
            "locked",
            "bad_password",
            "bad_password",
            "bad_password",
            "bad_password",
            "bad_password"
        ]
    );
}

#[tokio::test]
async fn unknown_users_get_the_same_answer_and_ips_are_throttled() {
    let app = TestApp::spawn_with("[auth]\nip_failures_per_minute = 3").await;
    for _ in 0..3 {
        let response = app.login("nobody-here", "whatever-password").await;
        assert_eq!(
            problem(response, StatusCode::UNAUTHORIZED).await["code"],
            "invalid_credentials"
        );
    }
    let throttled = app.login("admin", ADMIN_PASSWORD).await;
    assert!(throttled.headers().get("retry-after").is_some());
    assert_eq!(
        problem(throttled, StatusCode::TOO_MANY_REQUESTS).await["code"],
        "too_many_requests"
    );
}

/// A login as seen from `ip` (the app trusts 127.0.0.1 as its proxy in these tests).
async fn login_from(app: &TestApp, ip: &str, login: &str, password: &str) -> StatusCode {
    app.request(Method::POST, "/api/v1/auth/login", None)
        .header("x-forwarded-for", ip)
        .json(&json!({ "login": login, "password": password }))
        .send()
        .await
        .unwrap()
        .status()
}

/// Counts each status among `answers`.
fn tally(answers: &[StatusCode]) -> std::collections::BTreeMap<u16, usize> {
    let mut counts = std::collections::BTreeMap::new();
    for status in answers {
        *counts.entry(status.as_u16()).or_default() += 1;
    }
    counts
}

#[tokio::test]
async fn parallel_guesses_from_many_addresses_evaluate_at_most_the_threshold() {
    let app = TestApp::spawn_with(
        "[server]\ntrusted_proxies = [\"127.0.0.1\"]\n[auth]\nip_failures_per_minute = 1000",
    )
    .await;
    let (_, name) = signed_up_user(&app).await;
    let admin = app.admin_token().await;
    let mut answers = Vec::new();
    for wave in 0..2 {
        let guesses = (0..30).map(|i| {
            let ip = format!("198.51.100.{}", wave * 30 + i + 1);
            let (app, name) = (&app, name.clone());
            async move { login_from(app, &ip, &name, "not-the-password").await }
        });
        answers.extend(futures_util::future::join_all(guesses).await);
    }
    assert_eq!(
        tally(&answers),
        [(401, 5), (423, 55)].into(),
        "threshold 5: five guesses evaluated, every other one refused by the lock"
    );
    let audit: Value = app
        .get_json("/api/v1/audit-logs?operation=user.locked", &admin)
        .await;
    assert_eq!(audit["items"].as_array().unwrap().len(), 1, "locked once");
    assert_eq!(
        login_from(&app, "198.51.100.99", &name, "user-test-password-1").await,
        StatusCode::LOCKED,
        "the right password waits for the lock too"
    );
}

#[tokio::test]
async fn the_right_password_near_the_lock_does_not_count_as_a_failure() {
    let app = TestApp::spawn().await;
    let (_, name) = signed_up_user(&app).await;
    // Each time the fifth attempt would lock, but it is right: the user gets in and the count
    // starts over.
    for round in 0..2 {
        for _ in 0..4 {
            assert_eq!(
                app.login(&name, "not-the-password").await.status(),
                StatusCode::UNAUTHORIZED
            );
        }
        assert_eq!(
            app.login(&name, "user-test-password-1").await.status(),
            StatusCode::OK,
            "round {round}"
        );
    }
}

#[tokio::test]
async fn parallel_failures_from_one_address_pass_the_throttle_at_most_its_limit_and_ipv6_counts_per_64()
 {
    let app = TestApp::spawn_with(
        "[server]\ntrusted_proxies = [\"127.0.0.1\"]\n[auth]\nip_failures_per_minute = 5",
    )
    .await;
    let guesses = (0..20).map(|_| login_from(&app, "203.0.113.7", "nobody-here", "whatever"));
    let answers = futures_util::future::join_all(guesses).await;
    assert_eq!(tally(&answers), [(401, 5), (429, 15)].into());

    // One subscriber's /64 is one address; the next /64 is someone else.
    let mut same_block = Vec::new();
    for host in 1..=6 {
        let ip = format!("2001:db8:aa:bb::{host:x}");
        same_block.push(login_from(&app, &ip, "nobody-here", "whatever").await);
    }
    assert_eq!(tally(&same_block), [(401, 5), (429, 1)].into());
    assert_eq!(
        login_from(&app, "2001:db8:aa:bc::1", "nobody-here", "whatever").await,
        StatusCode::UNAUTHORIZED
    );
    // A right password does not use up its address's allowance.
    for _ in 0..6 {
        assert_eq!(
            login_from(&app, "192.0.2.1", "admin", ADMIN_PASSWORD).await,
            StatusCode::OK
        );
    }
}

#[tokio::test]
async fn refresh_rotates_and_a_reused_refresh_token_revokes_the_session() {
    let app = TestApp::spawn().await;
    let first = app.tokens("admin", ADMIN_PASSWORD).await;
    let refresh = |token: &TokenPair| {
        app.request(Method::POST, "/api/v1/auth/refresh", None)
            .json(&json!({ "refresh_token": token.refresh_token }))
            .send()
    };
    let second: TokenPair = answer(refresh(&first).await.unwrap(), StatusCode::OK).await;
    assert_ne!(second.access_token, first.access_token);
    assert_eq!(
        second.session_id, first.session_id,
        "same session, new tokens"
    );
    let old_access = app.get("/api/v1/auth/me", &first.access_token).await;
    assert_eq!(
        old_access.status(),
        StatusCode::UNAUTHORIZED,
        "the rotated-out access token is dead"
    );
    let new_access = second.access_token.as_str();
    assert_eq!(
        app.get("/api/v1/auth/me", new_access).await.status(),
        StatusCode::OK
    );

    let reused = refresh(&first).await.unwrap();
    assert_eq!(
        problem(reused, StatusCode::UNAUTHORIZED).await["code"],
        "refresh_token_reused"
    );
    assert_eq!(
        app.get("/api/v1/auth/me", new_access).await.status(),
        StatusCode::UNAUTHORIZED,
        "the whole session is revoked"
    );
    let after = refresh(&second).await.unwrap();
    assert_eq!(
        after.status(),
        StatusCode::UNAUTHORIZED,
        "its current refresh token too"
    );

    let admin = app.admin_token().await;
    let audit: Value = app
        .get_json(
            "/api/v1/audit-logs?operation=session.refresh_token_reused",
            &admin,
        )
        .await;
    assert_eq!(audit["items"][0]["operation_type"], "SECURITY");
}

#[tokio::test]
async fn a_refresh_token_presented_again_within_the_grace_period_is_refused_without_revoking() {
    let app = TestApp::spawn_with("[auth]\nrefresh_reuse_grace_secs = 30").await;
    let first = app.tokens("admin", ADMIN_PASSWORD).await;
    let body = json!({ "refresh_token": first.refresh_token });
    let second = app
        .request(Method::POST, "/api/v1/auth/refresh", None)
        .json(&body)
        .send()
        .await
        .unwrap();
    let second: TokenPair = answer(second, StatusCode::OK).await;
    let again = app
        .request(Method::POST, "/api/v1/auth/refresh", None)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(
        problem(again, StatusCode::UNAUTHORIZED).await["code"],
        "invalid_token"
    );
    assert_eq!(
        app.get("/api/v1/auth/me", &second.access_token)
            .await
            .status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn logout_and_session_management() {
    let app = TestApp::spawn().await;
    let laptop = app.admin_token().await;
    let phone = app.admin_token().await;
    let sessions: Vec<SessionView> = app.get_as("/api/v1/auth/sessions", &laptop).await;
    assert_eq!(sessions.len(), 2);
    assert_eq!(sessions.iter().filter(|s| s.current).count(), 1);
    let phone_session = sessions.iter().find(|s| !s.current).unwrap().id;
    let revoked = app
        .request(
            Method::DELETE,
            &format!("/api/v1/auth/sessions/{phone_session}"),
            Some(&laptop),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        app.get("/api/v1/auth/me", &phone).await.status(),
        StatusCode::UNAUTHORIZED
    );

    let logout = app
        .request(Method::POST, "/api/v1/auth/logout", Some(&laptop))
        .send()
        .await
        .unwrap();
    assert_eq!(logout.status(), StatusCode::NO_CONTENT);
    let after = app.get("/api/v1/auth/me", &laptop).await;
    assert_eq!(
        problem(after, StatusCode::UNAUTHORIZED).await["code"],
        "invalid_token"
    );
    let anonymous = app.anonymous_get("/api/v1/auth/me").await;
    assert_eq!(
        problem(anonymous, StatusCode::UNAUTHORIZED).await["code"],
        "missing_token"
    );
}

#[tokio::test]
async fn changing_the_password_signs_out_other_sessions_only() {
    let app = TestApp::spawn().await;
    let (_, current) = app.user_with(&["profile:self"]).await;
    let name = app.me(&current).await.username;
    let other = app.token(&name, "user-test-password-1").await;

    let wrong = app
        .post(
            "/api/v1/auth/password",
            &current,
            json!({ "current_password": "nope", "new_password": "a-brand-new-pass" }),
        )
        .await;
    assert_eq!(
        crate::helpers::fields(&problem(wrong, StatusCode::UNPROCESSABLE_ENTITY).await),
        vec!["current_password"]
    );
    let weak = app
        .post(
            "/api/v1/auth/password",
            &current,
            json!({ "current_password": "user-test-password-1", "new_password": "short" }),
        )
        .await;
    assert_eq!(
        crate::helpers::fields(&problem(weak, StatusCode::UNPROCESSABLE_ENTITY).await),
        vec!["new_password"]
    );

    let changed = app.post("/api/v1/auth/password", &current, json!({ "current_password": "user-test-password-1", "new_password": "a-brand-new-pass" })).await;
    assert_eq!(changed.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        app.get("/api/v1/auth/me", &current).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        app.get("/api/v1/auth/me", &other).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.login(&name, "user-test-password-1").await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.login(&name, "a-brand-new-pass").await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn disabling_a_user_ends_their_sessions_and_blocks_login() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let (user_id, token) = app.user_with(&["profile:self"]).await;
    let disabled = app
        .post(
            &format!("/api/v1/users/{user_id}/disable"),
            &admin,
            json!({}),
        )
        .await;
    let disabled: UserView = answer(disabled, StatusCode::OK).await;
    assert_eq!(disabled.status, UserStatus::Disabled);
    assert_eq!(
        app.get("/api/v1/auth/me", &token).await.status(),
        StatusCode::UNAUTHORIZED
    );
    let user: UserView = app
        .get_as(&format!("/api/v1/users/{user_id}"), &admin)
        .await;
    let login = app.login(&user.username, "user-test-password-1").await;
    assert_eq!(
        problem(login, StatusCode::FORBIDDEN).await["code"],
        "account_disabled"
    );
    app.post(
        &format!("/api/v1/users/{user_id}/enable"),
        &admin,
        json!({}),
    )
    .await;
    assert_eq!(
        app.login(&user.username, "user-test-password-1")
            .await
            .status(),
        StatusCode::OK
    );
}

/// Polls `url` with `token` (on another process) until its answer satisfies `done`; how long
/// it took.
async fn polled_until(
    app: &TestApp,
    url: &str,
    token: &str,
    done: impl Fn(StatusCode, &Value) -> bool,
) -> std::time::Duration {
    let started = std::time::Instant::now();
    loop {
        let response = app.client.get(url).bearer_auth(token).send().await.unwrap();
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        if done(status, &body) {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(10),
            "{url} still answers {status} {body}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// Polls `url` with `token` until it answers `status`; how long it took.
async fn answered_within(
    app: &TestApp,
    url: &str,
    token: &str,
    status: StatusCode,
) -> std::time::Duration {
    polled_until(app, url, token, |got, _| got == status).await
}

#[tokio::test]
async fn a_lost_permission_and_a_logout_reach_every_api_process() {
    use crate::helpers::processes::{ConfigFile, kill, spawn_api};
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let (mut other, base) = spawn_api(&ConfigFile::of(&app)).await;
    let (user, token) = app.user_with(&["contacts:read"]).await;
    let contacts_here = "/api/v1/contacts";
    let contacts_there = format!("{base}/api/v1/contacts");
    // The other process resolves the token (and keeps the answer for a moment).
    answered_within(&app, &contacts_there, &token, StatusCode::OK).await;
    // The user loses their role in this process: refused here at once, and there too once the
    // other process's resolution of the token runs out (auth::cache::TTL, under a second).
    let roles = app
        .send_json(
            Method::PUT,
            &format!("/api/v1/users/{user}/roles"),
            &admin,
            json!({ "roles": [] }),
        )
        .await;
    assert!(roles.status().is_success(), "{}", roles.status());
    assert_eq!(
        app.get(contacts_here, &token).await.status(),
        StatusCode::FORBIDDEN
    );
    let took = answered_within(&app, &contacts_there, &token, StatusCode::FORBIDDEN).await;
    eprintln!("the other process refused the lost permission after {took:?}");
    // A logout in this process ends the session there too.
    let logout = app.post("/api/v1/auth/logout", &token, json!({})).await;
    assert!(logout.status().is_success(), "{}", logout.status());
    assert_eq!(
        app.get("/api/v1/auth/me", &token).await.status(),
        StatusCode::UNAUTHORIZED
    );
    let me_there = format!("{base}/api/v1/auth/me");
    let took = answered_within(&app, &me_there, &token, StatusCode::UNAUTHORIZED).await;
    eprintln!("the other process refused the ended session after {took:?}");
    kill(&mut other).await;
}

#[tokio::test]
async fn a_changed_profile_shows_at_once_here_and_within_the_cache_bound_elsewhere() {
    use crate::helpers::processes::{ConfigFile, kill, spawn_api};
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let (mut other, base) = spawn_api(&ConfigFile::of(&app)).await;
    let (user, token) = app.user_with(&["profile:self"]).await;
    // Both processes have read (and keep for a moment) the profile as it was.
    for at in [app.address.as_str(), base.as_str()] {
        let me: Value = app
            .client
            .get(format!("{at}/api/v1/auth/me"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(me["user"]["id"], user, "{me}");
    }
    let patched = app
        .send_json(
            Method::PATCH,
            &format!("/api/v1/users/{user}"),
            &admin,
            json!({ "nickname": "改过的昵称" }),
        )
        .await;
    assert!(patched.status().is_success(), "{}", patched.status());
    // The process that made the change answers with it at once.
    let here: Value = app.get_json("/api/v1/auth/me", &token).await;
    assert_eq!(here["user"]["nickname"], "改过的昵称", "{here}");
    let took = polled_until(&app, &format!("{base}/api/v1/auth/me"), &token, |_, me| {
        me["user"]["nickname"] == "改过的昵称"
    })
    .await;
    eprintln!("the other process showed the new nickname after {took:?}");
    kill(&mut other).await;
}
