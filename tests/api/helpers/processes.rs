//! `wework` processes sharing a test app's database, Redis and master key, for tests that kill
//! them (`kill -9`) and start them again.

use std::{path::PathBuf, process::Stdio};

use tokio::{
    io::{AsyncBufReadExt, BufReader},
    process::{Child, Command},
};

use super::TestApp;

const BIN: &str = env!("CARGO_BIN_EXE_wework");

/// Writes the app's configuration to a file of its own; removed when dropped.
pub struct ConfigFile(pub PathBuf);

impl ConfigFile {
    pub fn of(app: &TestApp) -> Self {
        Self::with(&app.config)
    }

    pub fn with(config: &str) -> Self {
        let path = std::env::temp_dir().join(format!(
            "wework-test-{}.toml",
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::write(&path, config).unwrap();
        Self(path)
    }
}

impl Drop for ConfigFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn command(config: &ConfigFile, what: &str) -> Command {
    let mut command = Command::new(BIN);
    command
        .arg(what)
        .env("WEWORK_CONFIG", &config.0)
        .env("WEWORK__LOG__LEVEL", "warn")
        .env_remove("WEWORK_ADMIN_PASSWORD")
        .stderr(Stdio::null())
        .kill_on_drop(true);
    command
}

/// A `wework worker` process.
pub fn spawn_worker(config: &ConfigFile) -> Child {
    command(config, "worker")
        .stdout(Stdio::null())
        .spawn()
        .unwrap()
}

/// A `wework api` process on a free port, and its base URL once it listens.
pub async fn spawn_api(config: &ConfigFile) -> (Child, String) {
    let mut child = command(config, "api")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    while let Some(line) = lines.next_line().await.unwrap() {
        if let Some(url) = line.strip_prefix("wework listening on ") {
            let url = url.split_whitespace().next().unwrap().to_owned();
            // Keep reading (and dropping) its output so the process never blocks on a pipe.
            tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
            return (child, url);
        }
    }
    panic!("wework api exited before it listened");
}

/// A `wework api` process seen from outside: its URL and the admin's token.
pub struct RemoteApi {
    base: String,
    client: reqwest::Client,
    token: String,
}

impl RemoteApi {
    /// Signs in as the admin.
    pub async fn login(base: &str) -> Self {
        let mut api = Self {
            base: base.to_owned(),
            client: reqwest::Client::new(),
            token: String::new(),
        };
        let body = serde_json::json!({ "login": "admin", "password": super::ADMIN_PASSWORD });
        let tokens: service::auth::TokenPair = api
            .post("/api/v1/auth/login", body, reqwest::StatusCode::OK)
            .await;
        api.token = tokens.access_token;
        api
    }

    /// POSTs `body`, expecting `status` and a `T`.
    pub async fn post<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        body: serde_json::Value,
        status: reqwest::StatusCode,
    ) -> T {
        let response = self
            .client
            .post(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .json(&body)
            .send()
            .await
            .unwrap();
        super::answer(response, status).await
    }
}

/// SIGKILL, and wait until it is gone.
pub async fn kill(child: &mut Child) {
    child.start_kill().unwrap();
    child.wait().await.unwrap();
}
