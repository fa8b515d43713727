//! The console's session: the same access and refresh tokens API clients get, carried in
//! `HttpOnly`, `SameSite=Strict` cookies so no script can read them, with a CSRF token the
//! console echoes in `X-CSRF-Token` on every request that changes something.
//!
//! The CSRF token is derived from the access token (SHA-256 of a label and the token), so only
//! someone who holds the session can compute it, a cookie planted by another site cannot match
//! it, and nothing needs storing. Bearer clients never meet any of this.

use actix_web::{HttpRequest, HttpResponse, http::header};
use chrono::{DateTime, Utc};
use service::auth::TokenPair;
use sha2::{Digest, Sha256};

/// The access token; sent to every API path.
pub const ACCESS_COOKIE: &str = "wework_access";
/// The refresh token; sent only to the refresh route.
pub const REFRESH_COOKIE: &str = "wework_refresh";
/// The CSRF token, readable by the console's script (it holds nothing secret on its own).
pub const CSRF_COOKIE: &str = "wework_csrf";
pub const CSRF_HEADER: &str = "X-CSRF-Token";
pub const REFRESH_PATH: &str = "/api/v1/auth/session/refresh";

/// The CSRF token that belongs to `access_token`.
pub fn csrf_for(access_token: &str) -> String {
    let digest = Sha256::new()
        .chain_update(b"wework-csrf\0")
        .chain_update(access_token.as_bytes())
        .finalize();
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// The value of cookie `name` in the request, if sent.
pub fn cookie(req: &HttpRequest, name: &str) -> Option<String> {
    cookie_in(req.headers(), name)
}

pub fn cookie_in(headers: &header::HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value.trim_matches('"').to_owned())
        .filter(|value| !value.is_empty())
}

/// Whether an unsafe request on a cookie session carries the CSRF token of that session.
pub fn csrf_holds(headers: &header::HeaderMap, access_token: &str) -> bool {
    let sent = headers
        .get(CSRF_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    constant_time_eq(sent.as_bytes(), csrf_for(access_token).as_bytes())
}

/// Whether the refresh request echoes the CSRF cookie it came with (the access token, and with
/// it the bound token, may have expired by then; `SameSite=Strict` and the custom header keep
/// other sites out).
pub fn refresh_csrf_holds(req: &HttpRequest) -> bool {
    let sent = req
        .headers()
        .get(CSRF_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    cookie(req, CSRF_COOKIE)
        .is_some_and(|expected| constant_time_eq(sent.as_bytes(), expected.as_bytes()))
}

/// The `Set-Cookie` values that hold `tokens`. `secure` when the console is served over HTTPS.
pub fn session_cookies(tokens: &TokenPair, secure: bool) -> [String; 3] {
    let now = Utc::now();
    [
        session_cookie(
            ACCESS_COOKIE,
            &tokens.access_token,
            "/api",
            tokens.access_expires_at,
            now,
            secure,
            true,
        ),
        session_cookie(
            REFRESH_COOKIE,
            &tokens.refresh_token,
            REFRESH_PATH,
            tokens.refresh_expires_at,
            now,
            secure,
            true,
        ),
        session_cookie(
            CSRF_COOKIE,
            &csrf_for(&tokens.access_token),
            "/",
            tokens.refresh_expires_at,
            now,
            secure,
            false,
        ),
    ]
}

/// The `Set-Cookie` values that end the console session in the browser.
pub fn cleared_cookies(secure: bool) -> [String; 3] {
    [
        (ACCESS_COOKIE, "/api", true),
        (REFRESH_COOKIE, REFRESH_PATH, true),
        (CSRF_COOKIE, "/", false),
    ]
    .map(|(name, path, http_only)| {
        format!(
            "{name}=; Path={path}; Max-Age=0; SameSite=Strict{}{}",
            flag(http_only, "; HttpOnly"),
            flag(secure, "; Secure")
        )
    })
}

/// Appends `cookies` to a response.
pub fn append_cookies(response: &mut HttpResponse, cookies: [String; 3]) {
    for cookie in cookies {
        if let Ok(value) = header::HeaderValue::from_str(&cookie) {
            response.headers_mut().append(header::SET_COOKIE, value);
        }
    }
}

fn session_cookie(
    name: &str,
    value: &str,
    path: &str,
    expires_at: DateTime<Utc>,
    now: DateTime<Utc>,
    secure: bool,
    http_only: bool,
) -> String {
    let max_age = (expires_at - now).num_seconds().max(0);
    format!(
        "{name}={value}; Path={path}; Max-Age={max_age}; SameSite=Strict{}{}",
        flag(http_only, "; HttpOnly"),
        flag(secure, "; Secure")
    )
}

fn flag(on: bool, text: &'static str) -> &'static str {
    if on { text } else { "" }
}

/// Equality that takes as long whatever the first differing byte.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use actix_web::http::header::{HeaderMap, HeaderName, HeaderValue};

    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        map
    }

    #[test]
    fn cookies_are_found_by_exact_name() {
        let h = headers(&[
            ("cookie", "a=1; wework_access_x=2; wework_access=tok"),
            ("cookie", "b=3"),
        ]);
        assert_eq!(cookie_in(&h, ACCESS_COOKIE).as_deref(), Some("tok"));
        assert_eq!(cookie_in(&h, "b").as_deref(), Some("3"));
        assert_eq!(cookie_in(&h, "missing"), None);
        assert_eq!(
            cookie_in(&headers(&[("cookie", "wework_access=")]), ACCESS_COOKIE),
            None
        );
    }

    #[test]
    fn the_csrf_token_is_bound_to_the_session() {
        let token = csrf_for("access-1");
        assert_eq!(token.len(), 64);
        assert_ne!(token, csrf_for("access-2"));
        assert!(csrf_holds(
            &headers(&[("x-csrf-token", &token)]),
            "access-1"
        ));
        assert!(!csrf_holds(
            &headers(&[("x-csrf-token", &token)]),
            "access-2"
        ));
        assert!(!csrf_holds(&headers(&[]), "access-1"));
    }
}
