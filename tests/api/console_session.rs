//! The console's cookie session: tokens only in `HttpOnly` cookies, CSRF on every change, bearer
//! clients untouched; and the browser-facing headers and embedded pages.

use std::collections::HashMap;

use reqwest::{Method, RequestBuilder, Response, StatusCode, header};
use serde_json::{Value, json};

use crate::helpers::{ADMIN_PASSWORD, TestApp, problem};

/// The cookies a response sets, by name: (value, attributes).
fn set_cookies(response: &Response) -> HashMap<String, (String, String)> {
    response
        .headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .map(|v| {
            let text = v.to_str().unwrap();
            let (pair, attributes) = text.split_once(';').unwrap_or((text, ""));
            let (name, value) = pair.split_once('=').unwrap();
            (name.to_owned(), (value.to_owned(), attributes.to_owned()))
        })
        .collect()
}

/// A browser's view of one console session.
struct Browser {
    access: String,
    refresh: String,
    csrf: String,
}

impl Browser {
    async fn sign_in(app: &TestApp) -> (Self, Value) {
        let response = app
            .request(Method::POST, "/api/v1/auth/session", None)
            .json(&json!({ "login": "admin", "password": ADMIN_PASSWORD }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let cookies = set_cookies(&response);
        for (name, http_only) in [
            ("wework_access", true),
            ("wework_refresh", true),
            ("wework_csrf", false),
        ] {
            let (_, attributes) = &cookies[name];
            assert!(
                attributes.contains("SameSite=Strict"),
                "{name}: {attributes}"
            );
            assert_eq!(
                attributes.contains("HttpOnly"),
                http_only,
                "{name}: {attributes}"
            );
            assert!(
                !attributes.contains("Secure"),
                "plain HTTP in tests: {attributes}"
            );
        }
        assert!(
            cookies["wework_refresh"]
                .1
                .contains("Path=/api/v1/auth/session/refresh")
        );
        let body: Value = response.json().await.unwrap();
        let browser = Self {
            access: cookies["wework_access"].0.clone(),
            refresh: cookies["wework_refresh"].0.clone(),
            csrf: cookies["wework_csrf"].0.clone(),
        };
        (browser, body)
    }

    fn send(&self, app: &TestApp, method: Method, path: &str, csrf: bool) -> RequestBuilder {
        let cookie = if path.ends_with("/session/refresh") {
            format!("wework_refresh={}; wework_csrf={}", self.refresh, self.csrf)
        } else {
            format!("wework_access={}; wework_csrf={}", self.access, self.csrf)
        };
        let builder = app
            .request(method, path, None)
            .header(header::COOKIE, cookie);
        if csrf {
            builder.header("X-CSRF-Token", &self.csrf)
        } else {
            builder
        }
    }
}

#[tokio::test]
async fn the_console_session_lives_in_cookies_and_every_change_needs_its_csrf_token() {
    let app = TestApp::spawn().await;
    let (browser, body) = Browser::sign_in(&app).await;
    assert!(
        body.get("access_token").is_none() && body.get("refresh_token").is_none(),
        "{body}"
    );
    assert_eq!(body["csrf_token"], browser.csrf.as_str());

    let me = browser
        .send(&app, Method::GET, "/api/v1/auth/me", false)
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), StatusCode::OK, "reads need no CSRF token");

    let forged = browser
        .send(&app, Method::POST, "/api/v1/tags", false)
        .json(&json!({ "name": "forged" }))
        .send()
        .await
        .unwrap();
    let refused = problem(forged, StatusCode::FORBIDDEN).await;
    assert!(
        refused["detail"].as_str().unwrap().contains("X-CSRF-Token"),
        "{refused}"
    );
    let wrong = browser
        .send(&app, Method::POST, "/api/v1/tags", false)
        .header("X-CSRF-Token", "0".repeat(64))
        .json(&json!({ "name": "forged" }))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), StatusCode::FORBIDDEN);

    let created = browser
        .send(&app, Method::POST, "/api/v1/tags", true)
        .json(&json!({ "name": "from-console" }))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);

    // Bearer clients keep working as before, with no CSRF token.
    let admin = app.admin_token().await;
    let bearer = app
        .post("/api/v1/tags", &admin, json!({ "name": "from-api" }))
        .await;
    assert_eq!(bearer.status(), StatusCode::CREATED);

    // A public route ignores a stale console cookie: signing in again works without a token.
    let again = app
        .request(Method::POST, "/api/v1/auth/session", None)
        .header(header::COOKIE, "wework_access=stale")
        .json(&json!({ "login": "admin", "password": ADMIN_PASSWORD }))
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), StatusCode::OK);
}

#[tokio::test]
async fn refresh_rotates_the_cookies_and_sign_out_clears_them() {
    let app = TestApp::spawn().await;
    let (browser, _) = Browser::sign_in(&app).await;

    let no_header = browser
        .send(&app, Method::POST, "/api/v1/auth/session/refresh", false)
        .send()
        .await
        .unwrap();
    assert_eq!(
        no_header.status(),
        StatusCode::FORBIDDEN,
        "refresh needs the CSRF header too"
    );

    let refreshed = browser
        .send(&app, Method::POST, "/api/v1/auth/session/refresh", true)
        .send()
        .await
        .unwrap();
    assert_eq!(refreshed.status(), StatusCode::OK);
    let cookies = set_cookies(&refreshed);
    let next = Browser {
        access: cookies["wework_access"].0.clone(),
        refresh: cookies["wework_refresh"].0.clone(),
        csrf: cookies["wework_csrf"].0.clone(),
    };
    assert_ne!(next.access, browser.access);
    assert_ne!(
        next.csrf, browser.csrf,
        "the CSRF token follows the access token"
    );
    let me = next
        .send(&app, Method::GET, "/api/v1/auth/me", false)
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), StatusCode::OK);

    // The spent refresh cookie is refused, and the answer clears the cookies.
    let replayed = browser
        .send(&app, Method::POST, "/api/v1/auth/session/refresh", true)
        .send()
        .await
        .unwrap();
    assert_eq!(replayed.status(), StatusCode::UNAUTHORIZED);
    let cleared = set_cookies(&replayed);
    assert!(cleared["wework_access"].1.contains("Max-Age=0"));

    // Sign-in again, then sign out: the cookies are cleared and the token no longer works.
    let (browser, _) = Browser::sign_in(&app).await;
    let out = browser
        .send(&app, Method::POST, "/api/v1/auth/logout", true)
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), StatusCode::NO_CONTENT);
    let cleared = set_cookies(&out);
    for name in ["wework_access", "wework_refresh", "wework_csrf"] {
        assert!(cleared[name].1.contains("Max-Age=0"), "{name}");
    }
    let after = browser
        .send(&app, Method::GET, "/api/v1/auth/me", false)
        .send()
        .await
        .unwrap();
    assert_eq!(after.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn parallel_refreshes_with_one_cookie_let_exactly_one_through() {
    let app = TestApp::spawn().await;
    let (browser, _) = Browser::sign_in(&app).await;
    let attempts = (0..8).map(|_| {
        browser
            .send(&app, Method::POST, "/api/v1/auth/session/refresh", true)
            .send()
    });
    let statuses: Vec<StatusCode> = futures_util::future::join_all(attempts)
        .await
        .into_iter()
        .map(|r| r.unwrap().status())
        .collect();
    let ok = statuses.iter().filter(|s| **s == StatusCode::OK).count();
    assert!(
        ok <= 1,
        "one refresh token, at most one new pair: {statuses:?}"
    );
    assert!(
        statuses
            .iter()
            .all(|s| *s == StatusCode::OK || *s == StatusCode::UNAUTHORIZED),
        "{statuses:?}"
    );
}

#[tokio::test]
async fn answers_carry_browser_security_headers_and_the_console_is_served_at_the_root() {
    let app = TestApp::spawn().await;
    let api = app.anonymous_get("/healthz").await;
    let headers = api.headers();
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert_eq!(headers["x-frame-options"], "DENY");
    assert_eq!(headers["referrer-policy"], "no-referrer");
    assert_eq!(
        headers["content-security-policy"],
        "default-src 'none'; frame-ancestors 'none'"
    );

    let docs = app.anonymous_get("/docs").await;
    assert_eq!(
        docs.headers()["content-security-policy"],
        "frame-ancestors 'none'"
    );

    for path in ["/", "/tasks/12", "/contacts"] {
        let page = app.anonymous_get(path).await;
        assert_eq!(page.status(), StatusCode::OK, "{path}");
        assert!(
            page.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/html")
        );
        let policy = page.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(
            policy.contains("script-src 'self'") && !policy.contains("unsafe-inline"),
            "{policy}"
        );
        assert_eq!(page.headers()["cache-control"], "no-cache");
        assert!(
            page.text()
                .await
                .unwrap()
                .to_lowercase()
                .contains("<!doctype html>")
        );
    }
    let missing = app.anonymous_get("/assets/missing-file.js").await;
    problem(missing, StatusCode::NOT_FOUND).await;
    let api_missing = app.anonymous_get("/api/v1/nothing-here").await;
    problem(api_missing, StatusCode::NOT_FOUND).await;
}
