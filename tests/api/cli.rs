//! The real `wework` binary: first start, announcement, graceful stop, config errors, migrations.

use std::{process::Stdio, time::Duration};

use reqwest::StatusCode;
use tokio::{
    io::{AsyncBufReadExt, BufReader},
    process::Command,
};

use crate::helpers::{Backend, fresh_database};

const BIN: &str = env!("CARGO_BIN_EXE_wework");

async fn command(dir: &std::path::Path) -> Command {
    let mut cmd = Command::new(BIN);
    let url = fresh_database(Backend::from_env()).await;
    cmd.current_dir(dir)
        .env("WEWORK__DATABASE__URL", url)
        .env("WEWORK__SERVER__PORT", "0")
        .env("WEWORK__LOG__LEVEL", "warn")
        .env(
            "WEWORK__REDIS__URL",
            std::env::var("WEWORK_TEST_REDIS_URL").unwrap_or_default(),
        )
        .env(
            "WEWORK__REDIS__KEY_PREFIX",
            format!("wework-cli-test:{}:", uuid::Uuid::new_v4().simple()),
        )
        .env_remove("WEWORK_ADMIN_PASSWORD")
        .env_remove("WEWORK_CONFIG")
        .kill_on_drop(true);
    cmd
}

fn temp_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("wework-cli-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[tokio::test]
async fn serve_creates_the_admin_prints_the_password_once_and_stops_on_sigterm() {
    let dir = temp_dir();
    let mut child = command(&dir)
        .await
        .arg("serve")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let (mut password, mut address) = (None, None);
    while address.is_none() {
        let line = tokio::time::timeout(Duration::from_secs(60), lines.next_line())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        if let Some(rest) = line.split("password: ").nth(1) {
            password = Some(rest.trim().to_owned());
        }
        if let Some(rest) = line.strip_prefix("wework listening on ") {
            address = Some(rest.trim().to_owned());
        }
    }
    let (password, address) = (password.expect("password announced"), address.unwrap());
    assert!(
        dir.join("data/master.key").exists(),
        "a master key is created on first start"
    );
    let login = reqwest::Client::new()
        .post(format!("{address}/api/v1/auth/login"))
        .json(&serde_json::json!({ "login": "admin", "password": password }))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), StatusCode::OK);

    let pid = child.id().unwrap().to_string();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "graceful stop exits 0, got {status}");
}

#[tokio::test]
async fn invalid_configuration_fails_with_the_key_named() {
    let dir = temp_dir();
    let output = command(&dir)
        .await
        .env("WEWORK__SERVER__PORT", "eighty")
        .args(["config", "check"])
        .output()
        .await
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("server.port"), "{stderr}");

    let missing = command(&dir)
        .await
        .args(["--config", "nope.toml", "config", "check"])
        .output()
        .await
        .unwrap();
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("nope.toml"));
}

#[tokio::test]
async fn migrate_up_and_status() {
    let dir = temp_dir();
    let mut cmd = command(&dir).await;
    let up = cmd.args(["migrate", "up"]).output().await.unwrap();
    assert!(
        up.status.success(),
        "{}",
        String::from_utf8_lossy(&up.stderr)
    );
    // Same database, second command.
    let std_cmd = cmd.as_std();
    let url = std_cmd
        .get_envs()
        .find(|(k, _)| *k == "WEWORK__DATABASE__URL")
        .and_then(|(_, v)| v)
        .unwrap()
        .to_owned();
    let status = Command::new(BIN)
        .current_dir(&dir)
        .env("WEWORK__DATABASE__URL", url)
        .args(["migrate", "status"])
        .output()
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(
        text.contains("m20261126_000001_auth") && text.contains("Applied"),
        "{text}"
    );
}

/// Two APIs and three workers started at the same moment on an empty database: they take turns
/// on the migrations (a database lock) and on creating the administrator, and every one runs.
#[tokio::test]
async fn processes_started_together_on_a_fresh_database_all_run() {
    use crate::helpers::{processes, test_config};
    let config = processes::ConfigFile::with(&test_config("").await);
    let mut workers: Vec<_> = (0..3).map(|_| processes::spawn_worker(&config)).collect();
    let (first, second) =
        tokio::join!(processes::spawn_api(&config), processes::spawn_api(&config));
    for base in [&first.1, &second.1] {
        let ready = reqwest::get(format!("{base}/readyz")).await.unwrap();
        assert_eq!(ready.status(), StatusCode::OK);
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    for worker in &mut workers {
        assert!(
            worker.try_wait().unwrap().is_none(),
            "a worker died at start: {:?}",
            worker.try_wait()
        );
    }
}
