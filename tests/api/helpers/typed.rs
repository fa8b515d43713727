//! Answers read as the service's views (`TaskView`, `Page<ContactView>` …), so a changed view
//! breaks the tests when they compile, not when they run. `serde_json::Value` stays for what a
//! test checks as raw JSON: problem bodies, the OpenAPI document, fields that must be absent.

use std::time::Duration;

use reqwest::{Method, Response, StatusCode};
use serde::de::DeserializeOwned;
use serde_json::Value;
use service::rbac::users::UserView;

use super::TestApp;

/// Asserts the status and reads the body as `T`; a failure shows the body.
pub async fn answer<T: DeserializeOwned>(response: Response, status: StatusCode) -> T {
    let (got, path, text) = read(response).await;
    assert_eq!(got, status, "{path}: {text}");
    parse(&path, &text)
}

/// Asserts a 2xx status and reads the body as `T`.
pub async fn success<T: DeserializeOwned>(response: Response) -> T {
    let (got, path, text) = read(response).await;
    assert!(got.is_success(), "{path}: {got} {text}");
    parse(&path, &text)
}

async fn read(response: Response) -> (StatusCode, String, String) {
    let status = response.status();
    let path = response.url().path().to_owned();
    (status, path, response.text().await.unwrap())
}

fn parse<T: DeserializeOwned>(path: &str, text: &str) -> T {
    serde_json::from_str(text).unwrap_or_else(|e| {
        panic!(
            "{path}: the answer is not a {}: {e}: {text}",
            std::any::type_name::<T>()
        )
    })
}

impl TestApp {
    /// GET `path`, expecting 200 and a `T`.
    pub async fn get_as<T: DeserializeOwned>(&self, path: &str, token: &str) -> T {
        answer(self.get(path, token).await, StatusCode::OK).await
    }

    /// Every item of a keyset-paged list: `path` (with its query) is read page after page, 200
    /// at a time.
    pub async fn all_pages<T: DeserializeOwned>(&self, path: &str, token: &str) -> Vec<T> {
        let joiner = if path.contains('?') { '&' } else { '?' };
        let mut out = Vec::new();
        let mut cursor = String::new();
        loop {
            let page: service::pagination::Page<T> = self
                .get_as(&format!("{path}{joiner}limit=200{cursor}"), token)
                .await;
            out.extend(page.items);
            match page.next_cursor {
                Some(next) => cursor = format!("&cursor={next}"),
                None => return out,
            }
        }
    }

    /// POST `body` to `path`, expecting a 2xx and a `T`.
    pub async fn post_as<T: DeserializeOwned>(&self, path: &str, token: &str, body: Value) -> T {
        success(self.post(path, token, body).await).await
    }

    /// Sends `body` with `method`, expecting a 2xx and a `T`.
    pub async fn send_as<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        token: &str,
        body: Value,
    ) -> T {
        success(self.send_json(method, path, token, body).await).await
    }

    /// The user `token` signs in as: the `user` of `/api/v1/auth/me`.
    pub async fn me(&self, token: &str) -> UserView {
        let mut me: Value = self.get_as("/api/v1/auth/me", token).await;
        serde_json::from_value(me["user"].take()).unwrap()
    }

    /// Polls `path` as the admin until `done` holds for its `T`, for at most `seconds`. An
    /// answer other than 200 (a problem while the database is away) is polled again, like a `T`
    /// that is not done yet; a 200 that is not a `T` fails at once.
    pub async fn wait_for_as<T: DeserializeOwned + std::fmt::Debug>(
        &self,
        path: &str,
        seconds: u64,
        done: impl Fn(&T) -> bool,
    ) -> T {
        let admin = self.admin_token().await;
        let deadline = std::time::Instant::now() + Duration::from_secs(seconds);
        loop {
            let (status, path, text) = read(self.get(path, &admin).await).await;
            let shown = if status == StatusCode::OK {
                let value: T = parse(&path, &text);
                if done(&value) {
                    return value;
                }
                format!("{value:?}")
            } else {
                format!("{status} {text}")
            };
            let shown: String = shown.chars().take(2000).collect();
            assert!(
                std::time::Instant::now() < deadline,
                "timed out waiting on {path}: {shown}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}
