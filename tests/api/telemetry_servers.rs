//! Real servers the telemetry tests start for themselves, each on a free port with its own data:
//! VictoriaMetrics (speaks InfluxDB 2's write API) and InfluxDB 1.x. `scripts/services
//! install-telemetry-servers` installs them; a missing binary fails the test.

use std::{path::PathBuf, process::Stdio, time::Duration};

use serde_json::Value;
use tokio::process::{Child, Command};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn temp_dir(tag: &str) -> PathBuf {
    let dir = crate::helpers::tests_dir().join(format!("{tag}-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A spool directory of its own for one test's telemetry.
pub fn spool_dir() -> String {
    temp_dir("spool").display().to_string()
}

async fn wait_ready(url: &str) {
    let client = reqwest::Client::new();
    for _ in 0..150 {
        if let Ok(response) = client.get(url).send().await
            && response.status().is_success()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{url} did not become ready");
}

/// A VictoriaMetrics process that can be stopped and started again on the same port and data.
pub struct VictoriaMetrics {
    child: Option<Child>,
    port: u16,
    dir: PathBuf,
    pub url: String,
}

impl VictoriaMetrics {
    pub async fn start() -> Self {
        let port = free_port();
        let mut vm = Self {
            child: None,
            port,
            dir: temp_dir("vm"),
            url: format!("http://127.0.0.1:{port}"),
        };
        vm.restart().await;
        vm
    }

    /// Starts the server (again).
    pub async fn restart(&mut self) {
        let child = Command::new("victoria-metrics")
            .arg(format!("-httpListenAddr=127.0.0.1:{}", self.port))
            .arg(format!("-storageDataPath={}", self.dir.display()))
            .args([
                "-retentionPeriod=100y",
                "-search.latencyOffset=0",
                "-search.disableCache",
                "-loggerLevel=ERROR",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect(
                "victoria-metrics is not installed (scripts/services install-telemetry-servers)",
            );
        self.child = Some(child);
        wait_ready(&format!("{}/health", self.url)).await;
    }

    /// Stops it the way an operator would (SIGTERM): what it acknowledged is on disk.
    pub async fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            if let Some(pid) = child.id() {
                std::process::Command::new("kill")
                    .args(["-TERM", &pid.to_string()])
                    .status()
                    .ok();
            }
            if tokio::time::timeout(Duration::from_secs(10), child.wait())
                .await
                .is_err()
            {
                child.kill().await.ok();
            }
        }
    }

    /// Raw samples `(timestamp ms, value)` of every series matching `selector`, once at least
    /// `at_least` of them are readable (new series take a moment to become searchable).
    pub async fn samples(&self, selector: &str, at_least: usize, seconds: u64) -> Vec<(i64, f64)> {
        let client = reqwest::Client::new();
        let deadline = std::time::Instant::now() + Duration::from_secs(seconds);
        loop {
            client
                .get(format!("{}/internal/force_flush", self.url))
                .send()
                .await
                .ok();
            let body = client
                .get(format!("{}/api/v1/export", self.url))
                .query(&[("match[]", selector)])
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap();
            let mut samples: Vec<(i64, f64)> = body
                .lines()
                .filter_map(|line| serde_json::from_str::<Value>(line).ok())
                .flat_map(|series| {
                    let times: Vec<i64> = series["timestamps"]
                        .as_array()
                        .map(|a| a.iter().filter_map(Value::as_i64).collect())
                        .unwrap_or_default();
                    let values: Vec<f64> = series["values"]
                        .as_array()
                        .map(|a| a.iter().filter_map(Value::as_f64).collect())
                        .unwrap_or_default();
                    times.into_iter().zip(values).collect::<Vec<_>>()
                })
                .collect();
            samples.sort_by_key(|(t, _)| *t);
            if samples.len() >= at_least || std::time::Instant::now() > deadline {
                return samples;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
}

/// An InfluxDB 1.x server with a database created for the test.
pub struct Influx1 {
    _child: Child,
    pub url: String,
    _dir: PathBuf,
}

impl Influx1 {
    pub async fn start(database: &str) -> Self {
        let dir = temp_dir("influx");
        let (http, rpc) = (free_port(), free_port());
        let config = dir.join("influxdb.conf");
        std::fs::write(
            &config,
            format!(
                "reporting-enabled = false\nbind-address = \"127.0.0.1:{rpc}\"\n[meta]\n  dir = \"{d}/meta\"\n[data]\n  dir = \"{d}/data\"\n  wal-dir = \"{d}/wal\"\n  query-log-enabled = false\n[monitor]\n  store-enabled = false\n[http]\n  bind-address = \"127.0.0.1:{http}\"\n  log-enabled = false\n[logging]\n  level = \"error\"\n",
                d = dir.display()
            ),
        )
        .unwrap();
        let child = Command::new("influxd")
            .arg("run")
            .arg("-config")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("influxd is not installed (scripts/services install-telemetry-servers)");
        let url = format!("http://127.0.0.1:{http}");
        for _ in 0..150 {
            if reqwest::get(format!("{url}/ping")).await.is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let influx = Self {
            _child: child,
            url,
            _dir: dir,
        };
        influx
            .query(database, &format!("CREATE DATABASE {database}"))
            .await;
        influx
    }

    pub async fn query(&self, database: &str, q: &str) -> Value {
        reqwest::Client::new()
            .post(format!("{}/query", self.url))
            .form(&[("db", database), ("q", q), ("epoch", "ms")])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }
}

/// An osmem-server process (an in-memory OpenSearch-compatible server: what Elasticsearch
/// clients talk to here). Restarting it keeps the port and loses the data.
pub struct Osmem {
    child: Option<Child>,
    port: u16,
    pub url: String,
}

fn osmem_binary() -> String {
    if let Ok(path) = std::env::var("OSMEM_SERVER_BIN") {
        return path;
    }
    let output = std::process::Command::new("python3")
        .args([
            "-c",
            "import osmem_server; print(osmem_server.resolve_binary())",
        ])
        .output()
        .expect("python3 is needed to find osmem-server");
    assert!(
        output.status.success(),
        "osmem-server is not installed (scripts/services install-telemetry-servers)"
    );
    String::from_utf8(output.stdout).unwrap().trim().to_owned()
}

impl Osmem {
    pub async fn start() -> Self {
        let port = free_port();
        let mut server = Self {
            child: None,
            port,
            url: format!("http://127.0.0.1:{port}"),
        };
        server.restart().await;
        server
    }

    pub async fn restart(&mut self) {
        let child = Command::new(osmem_binary())
            .arg("-addr")
            .arg(format!("127.0.0.1:{}", self.port))
            .arg("-no-stdin-watch")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        self.child = Some(child);
        wait_ready(&format!("{}/", self.url)).await;
    }

    pub async fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().await.ok();
        }
    }
}
