//! `TestApp::spawn()`: the application on port 0 with a fresh database, plus request helpers.

use std::time::Duration;

use entity::states::{SyncStatus, TaskStatus};
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use sea_orm::{ConnectionTrait, Database};
use serde_json::{Value, json};
use service::{
    Context,
    auth::TokenPair,
    config::Settings,
    instances::{InstanceView, accounts::AccountView},
    pagination::Page,
    rbac::{roles::RoleView, users::UserView},
    sync::SyncRunView,
    tasks::TaskView,
};

pub const ADMIN_PASSWORD: &str = "admin-test-password-1";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    MySql,
    Postgres,
}

impl Backend {
    pub fn from_env() -> Self {
        match std::env::var("WEWORK_TEST_BACKEND")
            .unwrap_or_default()
            .as_str()
        {
            "" | "sqlite" => Self::Sqlite,
            "mysql" | "mariadb" => Self::MySql,
            "postgres" | "postgresql" => Self::Postgres,
            other => panic!("unknown WEWORK_TEST_BACKEND `{other}`"),
        }
    }
}

/// Creates an empty database of the chosen backend and returns its URL. A backend that was asked
/// for but cannot be reached fails the test: it is never skipped.
/// This run's tag: `WEWORK_TEST_RUN` (hex, set by `scripts/test`) or `local`. Databases and
/// files carry it, so clean-up after one run leaves another run's alone.
pub fn run_tag() -> String {
    std::env::var("WEWORK_TEST_RUN")
        .ok()
        .filter(|t| !t.is_empty() && t.len() <= 16 && t.bytes().all(|b| b.is_ascii_hexdigit()))
        .unwrap_or_else(|| "local".to_owned())
}

/// The directory this run's test files go in (created).
pub fn tests_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("wework-tests-{}", run_tag()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

pub async fn fresh_database(backend: Backend) -> String {
    let name = format!("wework_t_{}_{}", run_tag(), uuid::Uuid::new_v4().simple());
    match backend {
        Backend::Sqlite => {
            let dir = tests_dir();
            format!(
                "sqlite://{}?mode=rwc",
                dir.join(format!("{name}.db")).display()
            )
        }
        Backend::MySql => {
            let server = std::env::var("WEWORK_TEST_MYSQL_URL")
                .unwrap_or_else(|_| "mysql://root@127.0.0.1:3306".into());
            create_database(
                &format!("{server}/mysql"),
                &format!("CREATE DATABASE {name} CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"),
            )
            .await;
            format!("{server}/{name}")
        }
        Backend::Postgres => {
            let server = std::env::var("WEWORK_TEST_POSTGRES_URL")
                .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into());
            create_database(
                &format!("{server}/postgres"),
                &format!("CREATE DATABASE {name}"),
            )
            .await;
            format!("{server}/{name}")
        }
    }
}

async fn create_database(admin_url: &str, sql: &str) {
    let admin = Database::connect(admin_url)
        .await
        .unwrap_or_else(|e| panic!("test database server {admin_url} unreachable: {e}"));
    admin.execute_unprepared(sql).await.unwrap();
    admin.close().await.ok();
}

/// Settings for a test: port 0, its own database and Redis key prefix, a fresh master key.
pub async fn test_config(extra_toml: &str) -> String {
    let url = fresh_database(Backend::from_env()).await;
    let redis = std::env::var("WEWORK_TEST_REDIS_URL").unwrap_or_default();
    let prefix = format!("wework-test:{}:", uuid::Uuid::new_v4().simple());
    let queue = tests_dir().join(format!("{}.queue.db", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(queue.parent().unwrap()).unwrap();
    let spool = queue.with_extension("spool");
    let (queue, spool) = (queue.display(), spool.display());
    let key = service::crypto::sealer::Sealer::generate_key();
    let base = format!(
        r#"
[server]
port = 0
workers = 1
[database]
url = "{url}"
max_connections = 5
[redis]
url = "{redis}"
key_prefix = "{prefix}"
[secrets]
master_key = "{key}"
[auth]
refresh_reuse_grace_secs = 0
[log]
level = "warn"
[outbound]
allowed_networks = ["127.0.0.1"]
connect_timeout_secs = 2
request_timeout_secs = 5
[instances]
heartbeat_timeout_secs = 2
offline_after_missed = 2
metrics_spool_dir = "{spool}/sql-metrics"
[worker]
queue_path = "{queue}"
[elasticsearch]
spool_dir = "{spool}/logs"
[influxdb]
spool_dir = "{spool}/metrics"
"#
    );
    merge_toml(&base, extra_toml)
}

/// Overlays `extra` on `base` table by table (tests override a few keys).
fn merge_toml(base: &str, extra: &str) -> String {
    let mut base: toml::Table = base.parse().unwrap();
    let extra: toml::Table = extra.parse().unwrap();
    for (section, values) in extra {
        match (base.get_mut(&section), values) {
            (Some(toml::Value::Table(target)), toml::Value::Table(values)) => target.extend(values),
            (_, values) => {
                base.insert(section, values);
            }
        }
    }
    base.to_string()
}

pub struct TestApp {
    pub address: String,
    pub client: reqwest::Client,
    pub ctx: Context,
    /// The configuration the app runs with, for `wework` processes that share its database.
    pub config: String,
    worker_stop: Option<tokio::sync::watch::Sender<bool>>,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(stop) = &self.worker_stop {
            let _ = stop.send(true);
        }
    }
}

mod simulator;
pub use simulator::TestSim;

mod typed;
pub use typed::answer;

impl TestApp {
    pub async fn spawn() -> Self {
        Self::spawn_with("").await
    }

    pub async fn spawn_with(extra_toml: &str) -> Self {
        // `WEWORK_TEST_LOG=warn cargo test … -- --nocapture` shows the app's and worker's logs.
        if let Ok(filter) = std::env::var("WEWORK_TEST_LOG") {
            let _ = tracing_subscriber::fmt()
                .with_env_filter(filter)
                .with_test_writer()
                .try_init();
        }
        let config = test_config(extra_toml).await;
        let settings = Settings::from_toml(&config).unwrap();
        let (ctx, _) = wework::prepare(settings, Some(ADMIN_PASSWORD.to_owned()))
            .await
            .unwrap();
        let app = api::Application::build(ctx.clone()).unwrap();
        let address = format!("http://127.0.0.1:{}", app.port());
        tokio::spawn(app.run_until_stopped());
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap();
        Self {
            address,
            client,
            ctx,
            config,
            worker_stop: None,
        }
    }

    /// Runs the background worker (heartbeats, sync, events) for this app until it is dropped.
    pub fn start_worker(&mut self) {
        let (stop, stopped) = tokio::sync::watch::channel(false);
        tokio::spawn(worker::run(self.ctx.clone(), stopped));
        self.worker_stop = Some(stop);
    }

    /// Stops the in-process worker (its current passes finish first).
    pub async fn stop_worker(&mut self) {
        if let Some(stop) = self.worker_stop.take() {
            let _ = stop.send(true);
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }

    /// Registers the simulator as an agent instance and a WeCom instance; returns their ids.
    pub async fn register_sim(&self, sim: &TestSim, interval: i32) -> (i64, i64) {
        let admin = self.admin_token().await;
        let agent = self
            .post("/api/v1/instances", &admin, json!({ "name": format!("agent {}", uuid::Uuid::new_v4().simple()), "kind": "agent", "api_url": format!("{}/agent", sim.base), "heartbeat_interval": interval, "config": { "agent_secret": "sim-agent-secret" } }))
            .await;
        let agent: InstanceView = answer(agent, StatusCode::CREATED).await;
        let wecom = self
            .post("/api/v1/instances", &admin, json!({ "name": format!("wecom {}", uuid::Uuid::new_v4().simple()), "kind": "wecom", "api_url": format!("{}/cgi-bin", sim.base), "heartbeat_interval": interval, "config": { "corp_id": "wwsimcorp", "corp_secret": "sim-corp-secret", "agent_id": 1_000_002 } }))
            .await;
        let wecom: InstanceView = answer(wecom, StatusCode::CREATED).await;
        (agent.id, wecom.id)
    }

    /// Registers the simulator's two instances, starts the worker and syncs the agent instance:
    /// how a test that sends begins. Returns the agent instance's id.
    pub async fn with_synced_agent(&mut self, sim: &TestSim) -> i64 {
        let (agent, _) = self.register_sim(sim, 60).await;
        self.start_worker();
        self.sync(agent).await;
        agent
    }

    /// As `with_synced_agent`, syncing the WeCom instance instead; returns its id.
    pub async fn with_synced_wecom(&mut self, sim: &TestSim) -> i64 {
        let (_, wecom) = self.register_sim(sim, 60).await;
        self.start_worker();
        self.sync(wecom).await;
        wecom
    }

    /// Starts a broadcast of `content` to every contact of `agent`, with the sim's sends slowed
    /// (20–120 ms) so a kill or an outage lands while chunks are in flight; returns the task id.
    pub async fn start_slow_broadcast(&self, sim: &TestSim, agent: i64, name: &str) -> i64 {
        sim.control(
            Method::PUT,
            "/faults",
            json!({ "latency_ms_min": 20, "latency_ms_max": 120 }),
        )
        .await;
        let created: TaskView = self
            .post_as(
                "/api/v1/tasks",
                &self.admin_token().await,
                json!({ "name": name, "task_type": "broadcast", "content": "{{ nickname }}，周末特惠", "audience": { "filter": { "instance_ids": [agent] } } }),
            )
            .await;
        created.id
    }

    /// Ids of the accounts synced from `instance`.
    pub async fn account_ids(&self, instance: i64) -> Vec<i64> {
        let admin = self.admin_token().await;
        let listed: Page<AccountView> = self
            .get_as(&format!("/api/v1/accounts?instance_id={instance}"), &admin)
            .await;
        listed.items.iter().map(|a| a.id).collect()
    }

    pub async fn task(&self, id: i64) -> TaskView {
        self.get_as(&format!("/api/v1/tasks/{id}"), &self.admin_token().await)
            .await
    }

    /// Waits until at least `count` receivers of the task were sent.
    pub async fn wait_sent(&self, id: i64, count: i64) {
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            let t = self.task(id).await;
            if i64::from(t.counts.success) >= count {
                return;
            }
            assert!(std::time::Instant::now() < deadline, "no progress: {t:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits for the task to complete, then checks that each of its `receivers` was sent and
    /// that the sim delivered exactly that many distinct messages (a resend under the same
    /// idempotency key is answered from the first result, so it never counts twice).
    pub async fn assert_completed_exactly_once(&self, sim: &TestSim, id: i64, receivers: i64) {
        let done: TaskView = self
            .wait_for_as(&format!("/api/v1/tasks/{id}"), 90, |t: &TaskView| {
                t.status == TaskStatus::Completed
            })
            .await;
        let c = &done.counts;
        assert_eq!(i64::from(c.target), receivers);
        assert_eq!(i64::from(c.success), receivers, "{c:?}");
        assert_eq!(c.failed, 0);
        assert_eq!(c.pending, 0);
        let deliveries = sim.deliveries().await;
        assert_eq!(
            deliveries["delivered"], receivers,
            "each receiver got the message once: {deliveries}"
        );
        assert_eq!(
            deliveries["recipients"], receivers,
            "nobody got it twice under two keys: {deliveries}"
        );
    }

    /// Polls `path` until `done` holds for its JSON, for at most `seconds`.
    pub async fn wait_for(&self, path: &str, seconds: u64, done: impl Fn(&Value) -> bool) -> Value {
        let admin = self.admin_token().await;
        let deadline = std::time::Instant::now() + Duration::from_secs(seconds);
        loop {
            let value: Value = self.get_json(path, &admin).await;
            if done(&value) {
                return value;
            }
            let shown: String = value.to_string().chars().take(2000).collect();
            assert!(
                std::time::Instant::now() < deadline,
                "timed out waiting on {path}: {shown}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Queues a sync of `instance` and waits for it to finish.
    /// Where an agent instance delivers its events: its callback URL on this app's address.
    pub async fn agent_callback_url(&self, instance: i64) -> String {
        let admin = self.admin_token().await;
        let instance: Value = self
            .get_json(&format!("/api/v1/instances/{instance}"), &admin)
            .await;
        instance["callback_url"]
            .as_str()
            .expect("an instance has a callback URL")
            .replace("http://127.0.0.1:8080", &self.address)
    }

    /// Syncs the instance and waits for the run to succeed.
    pub async fn sync(&self, instance: i64) -> SyncRunView {
        let run = self.sync_to_end(instance).await;
        assert_eq!(
            run.status,
            SyncStatus::Succeeded,
            "the sync failed: {run:?}"
        );
        run
    }

    /// Requests a sync and waits until it succeeded or failed.
    pub async fn sync_to_end(&self, instance: i64) -> SyncRunView {
        let admin = self.admin_token().await;
        let queued = self
            .post(
                &format!("/api/v1/instances/{instance}/sync"),
                &admin,
                json!({}),
            )
            .await;
        let run: SyncRunView = answer(queued, StatusCode::ACCEPTED).await;
        let finished = |r: &SyncRunView| {
            r.id == run.id && matches!(r.status, SyncStatus::Succeeded | SyncStatus::Failed)
        };
        let runs: Page<SyncRunView> = self
            .wait_for_as(
                &format!("/api/v1/instances/{instance}/sync-runs"),
                60,
                |v: &Page<SyncRunView>| v.items.iter().any(finished),
            )
            .await;
        runs.items.into_iter().find(finished).unwrap()
    }

    pub fn request(&self, method: Method, path: &str, token: Option<&str>) -> RequestBuilder {
        let builder = self
            .client
            .request(method, format!("{}{path}", self.address));
        match token {
            Some(t) => builder.bearer_auth(t),
            None => builder,
        }
    }

    pub async fn get(&self, path: &str, token: &str) -> Response {
        self.request(Method::GET, path, Some(token))
            .send()
            .await
            .unwrap()
    }

    pub async fn send_json(
        &self,
        method: Method,
        path: &str,
        token: &str,
        body: Value,
    ) -> Response {
        self.request(method, path, Some(token))
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    /// DELETE `path`; the response as it came.
    pub async fn delete(&self, path: &str, token: &str) -> Response {
        self.request(Method::DELETE, path, Some(token))
            .send()
            .await
            .unwrap()
    }

    pub async fn post(&self, path: &str, token: &str, body: Value) -> Response {
        self.send_json(Method::POST, path, token, body).await
    }

    pub async fn anonymous_get(&self, path: &str) -> Response {
        self.request(Method::GET, path, None).send().await.unwrap()
    }

    pub async fn openapi(&self) -> Value {
        self.anonymous_get("/api/openapi.json")
            .await
            .json()
            .await
            .unwrap()
    }

    /// GET and parse the JSON body, whatever the status (tests assert on the content).
    pub async fn get_json(&self, path: &str, token: &str) -> Value {
        self.get(path, token).await.json().await.unwrap()
    }

    pub async fn post_json(&self, path: &str, token: &str, body: Value) -> Value {
        self.post(path, token, body).await.json().await.unwrap()
    }

    pub async fn login(&self, login: &str, password: &str) -> Response {
        self.request(Method::POST, "/api/v1/auth/login", None)
            .json(&json!({ "login": login, "password": password }))
            .send()
            .await
            .unwrap()
    }

    /// Logs in and returns the whole token pair.
    pub async fn tokens(&self, login: &str, password: &str) -> TokenPair {
        answer(self.login(login, password).await, StatusCode::OK).await
    }

    pub async fn token(&self, login: &str, password: &str) -> String {
        self.tokens(login, password).await.access_token
    }

    pub async fn admin_token(&self) -> String {
        self.token("admin", ADMIN_PASSWORD).await
    }

    /// Creates a role holding exactly `permissions` and a user with that role; returns the user
    /// id and an access token. `permissions` may be empty: a user with no permission at all.
    pub async fn user_with(&self, permissions: &[&str]) -> (i64, String) {
        let admin = self.admin_token().await;
        let suffix = uuid::Uuid::new_v4().simple().to_string();
        let mut grants = Vec::new();
        if !permissions.is_empty() {
            let role = self
                .post("/api/v1/roles", &admin, json!({ "name": format!("r_{}", &suffix[..12]), "display_name": "test role", "permissions": permissions }))
                .await;
            let role: RoleView = answer(role, StatusCode::CREATED).await;
            grants.push(json!({ "role_id": role.id }));
        }
        let username = format!("u{}", &suffix[..12]);
        let password = "user-test-password-1";
        let user = self
            .post(
                "/api/v1/users",
                &admin,
                json!({ "username": username, "password": password, "roles": grants }),
            )
            .await;
        let user: UserView = answer(user, StatusCode::CREATED).await;
        (user.id, self.token(&username, password).await)
    }

    pub async fn role_id(&self, name: &str) -> i64 {
        let admin = self.admin_token().await;
        let roles: Page<RoleView> = self.get_as("/api/v1/roles?limit=200", &admin).await;
        roles.items.iter().find(|r| r.name == name).unwrap().id
    }
}

/// Asserts a problem+json response and returns its body.
pub async fn problem(response: Response, status: StatusCode) -> Value {
    assert_eq!(response.status(), status, "unexpected status");
    let content_type = response
        .headers()
        .get("content-type")
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(content_type, "application/problem+json");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["status"], status.as_u16());
    assert!(
        body["type"]
            .as_str()
            .unwrap()
            .starts_with("/docs/problems#")
    );
    assert!(
        body["request_id"].is_string(),
        "problem carries the request id: {body}"
    );
    body
}

/// The field names a validation problem lists.
pub fn fields(problem: &Value) -> Vec<String> {
    problem["errors"]
        .as_array()
        .map(|e| {
            e.iter()
                .map(|e| e["field"].as_str().unwrap().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// `wework` processes sharing a test app's database, Redis and master key, for tests that kill
/// them (`kill -9`) and start them again.
pub mod processes;
