//! `wework bench login-flood`: how much a flood of logins slows everyone else. The API runs
//! in-process on a random port; an authenticated `GET /api/v1/auth/me` is timed while idle, then
//! again while `--flooders` clients log in without pause from distinct addresses (each login
//! costs an argon2id hash). Prints p50/p99 for both phases for docs/benchmarks.md.

use std::time::{Duration, Instant};

use clap::Args as ClapArgs;
use serde_json::json;

use super::bench::{fresh_context_as, percentiles};

#[derive(Debug, ClapArgs)]
pub struct LoginFloodArgs {
    /// Clients logging in at once during the flood.
    #[arg(long, default_value_t = 24)]
    flooders: usize,
    /// Timed `GET /api/v1/auth/me` requests per phase.
    #[arg(long, default_value_t = 200)]
    requests: usize,
    #[arg(long)]
    database_url: Option<String>,
}

pub async fn login_flood_bench(args: LoginFloodArgs) -> anyhow::Result<()> {
    let password = uuid::Uuid::new_v4().to_string();
    let ctx = fresh_context_as(
        args.database_url,
        "login",
        "[server]\nport = 0\ntrusted_proxies = [\"127.0.0.1\"]\n[auth]\nip_failures_per_minute = 100000",
        &password,
    )
    .await?;
    let app = api::Application::build(ctx)?;
    let base = format!("http://127.0.0.1:{}", app.port());
    let server = tokio::spawn(app.run_until_stopped());
    let client = reqwest::Client::new();
    let token = login(&client, &base, "admin", &password, "192.0.2.1")
        .await?
        .ok_or_else(|| anyhow::anyhow!("admin login failed"))?;

    let idle = time_me(&client, &base, &token, args.requests).await?;
    let stop = tokio::sync::watch::channel(false);
    let flooders: Vec<_> = (0..args.flooders)
        .map(|i| {
            let (client, base, mut stopped) = (client.clone(), base.clone(), stop.1.clone());
            tokio::spawn(async move {
                let mut logins = 0_u64;
                let mut n = 0_u32;
                while !*stopped.borrow_and_update() {
                    n += 1;
                    let ip = format!("10.{}.{}.{}", i, n / 250 % 250, n % 250 + 1);
                    let _ = login(&client, &base, "nobody", "wrong-password", &ip).await;
                    logins += 1;
                }
                logins
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let started = Instant::now();
    let flood = time_me(&client, &base, &token, args.requests).await?;
    let elapsed = started.elapsed();
    stop.0.send(true)?;
    let mut logins = 0;
    for flooder in flooders {
        logins += flooder.await?;
    }
    server.abort();

    println!("| phase | GET /auth/me p50 | p99 |");
    println!("|---|---|---|");
    let (p50, p99) = percentiles(idle);
    println!("| idle | {p50:.1} ms | {p99:.1} ms |");
    let (p50, p99) = percentiles(flood);
    println!(
        "| {} parallel logins ({:.0} logins/s) | {p50:.1} ms | {p99:.1} ms |",
        args.flooders,
        logins as f64 / elapsed.as_secs_f64()
    );
    Ok(())
}

async fn login(
    client: &reqwest::Client,
    base: &str,
    name: &str,
    password: &str,
    ip: &str,
) -> anyhow::Result<Option<String>> {
    let response = client
        .post(format!("{base}/api/v1/auth/login"))
        .header("x-forwarded-for", ip)
        .json(&json!({ "login": name, "password": password }))
        .send()
        .await?;
    if !response.status().is_success() {
        return Ok(None);
    }
    let body: serde_json::Value = response.json().await?;
    Ok(body["access_token"].as_str().map(str::to_owned))
}

async fn time_me(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    requests: usize,
) -> anyhow::Result<Vec<Duration>> {
    let mut samples = Vec::with_capacity(requests);
    for _ in 0..requests {
        let started = Instant::now();
        let response = client
            .get(format!("{base}/api/v1/auth/me"))
            .bearer_auth(token)
            .send()
            .await?;
        anyhow::ensure!(
            response.status().is_success(),
            "GET /auth/me: {}",
            response.status()
        );
        response.bytes().await?;
        samples.push(started.elapsed());
    }
    Ok(samples)
}
