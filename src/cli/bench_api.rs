//! `wework bench api`: the cost of the API's request path. In one process and one run, the same
//! closed-loop load (`--connections` clients, each sending its next request when the last one
//! answered, for `--seconds`) goes to a bare actix-web handler returning the JSON that
//! `GET /api/v1/auth/me` returns, then to the real authenticated route (and, with `--contacts`,
//! to `GET /api/v1/contacts?limit=50` over that many seeded contacts). Prints req/s, p50/p99
//! latency and the ratio to the bare handler, for docs/benchmarks.md. The load generator shares
//! the machine with the server, for both targets alike: the ratio is the figure to compare. The
//! targets take turns in `--rounds` short windows rather than one long one each, so a drift of
//! the machine's speed during the run (±30% here) weighs on every target alike.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use actix_web::{App, HttpResponse, HttpServer, web};
use clap::Args as ClapArgs;

use super::bench::{fresh_context_as, peak_rss_mib, percentiles};

#[derive(Debug, ClapArgs)]
pub struct ApiArgs {
    /// Clients sending at once.
    #[arg(long, default_value_t = 32)]
    connections: usize,
    /// Seconds of load per target (after one second of warm-up).
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Turns each target takes, splitting its seconds into that many windows.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=100))]
    rounds: u32,
    /// Also time `GET /api/v1/contacts?limit=50` over this many seeded contacts (0: skip).
    #[arg(long, default_value_t = 0)]
    contacts: usize,
    /// Database to use; must be empty. Default: a fresh SQLite file in the temp directory.
    #[arg(long)]
    database_url: Option<String>,
}

/// What one target did under the load.
#[derive(Default)]
struct Measured {
    requests: usize,
    elapsed: Duration,
    samples: Vec<Duration>,
}

impl Measured {
    fn per_second(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64()
    }
}

/// A route under load, with the bearer token it needs.
struct Target {
    name: String,
    url: String,
    token: Option<String>,
}

/// `connections` clients request the target back to back for `window`; every answer must be a
/// 200. Returns each request's time.
async fn window(
    client: &reqwest::Client,
    target: &Target,
    connections: usize,
    window: Duration,
) -> anyhow::Result<Vec<Duration>> {
    let workers: Vec<_> = (0..connections)
        .map(|_| {
            let (client, url) = (client.clone(), target.url.clone());
            let token = target.token.clone();
            tokio::spawn(async move {
                let mut samples = Vec::new();
                let end = Instant::now() + window;
                while Instant::now() < end {
                    let started = Instant::now();
                    let mut request = client.get(&url);
                    if let Some(t) = &token {
                        request = request.bearer_auth(t);
                    }
                    let response = request.send().await?;
                    anyhow::ensure!(
                        response.status().is_success(),
                        "{url}: {}",
                        response.status()
                    );
                    response.bytes().await?;
                    samples.push(started.elapsed());
                }
                Ok(samples)
            })
        })
        .collect();
    let mut all = Vec::new();
    for w in workers {
        all.extend(w.await??);
    }
    Ok(all)
}

/// Each target in turn, `rounds` times, `seconds / rounds` a turn, after a second of warm-up
/// each.
async fn load(
    targets: &[Target],
    connections: usize,
    seconds: u64,
    rounds: u32,
) -> anyhow::Result<Vec<Measured>> {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(connections)
        .build()?;
    for target in targets {
        window(&client, target, connections, Duration::from_secs(1)).await?;
    }
    let turn = Duration::from_secs(seconds) / rounds;
    let mut measured: Vec<Measured> = targets.iter().map(|_| Measured::default()).collect();
    for _ in 0..rounds {
        for (target, m) in targets.iter().zip(&mut measured) {
            let started = Instant::now();
            let samples = window(&client, target, connections, turn).await?;
            m.elapsed += started.elapsed();
            m.requests += samples.len();
            m.samples.extend(samples);
        }
    }
    Ok(measured)
}

/// A bare actix-web server answering `body` as JSON at `/`: the floor of what a route costs.
async fn bare(body: Arc<String>) -> anyhow::Result<(String, actix_web::dev::ServerHandle)> {
    let server = HttpServer::new(move || {
        let body = body.clone();
        App::new().route(
            "/",
            web::get().to(move || {
                let body = body.clone();
                async move {
                    HttpResponse::Ok()
                        .content_type("application/json")
                        .body(body.as_str().to_owned())
                }
            }),
        )
    })
    .workers(2)
    .bind(("127.0.0.1", 0))?;
    let port = server.addrs()[0].port();
    let server = server.run();
    let handle = server.handle();
    tokio::spawn(server);
    Ok((format!("http://127.0.0.1:{port}/"), handle))
}

pub async fn api_bench(args: ApiArgs) -> anyhow::Result<()> {
    let password = uuid::Uuid::new_v4().to_string();
    let ctx = fresh_context_as(args.database_url, "api", "[server]\nport = 0\n", &password).await?;
    if args.contacts > 0 {
        super::bench::seed_contacts(&ctx, args.contacts).await?;
        // As autovacuum would after such a load: without statistics PostgreSQL took the
        // 20,000 contacts for five and sorted them all for every page (284 req/s).
        super::bench::vacuum_analyze(&ctx, &["contacts", "contact_tags", "tags"]).await?;
    }
    let app = api::Application::build(ctx)?;
    let base = format!("http://127.0.0.1:{}", app.port());
    let server = tokio::spawn(app.run_until_stopped());
    let client = reqwest::Client::new();
    let login: serde_json::Value = client
        .post(format!("{base}/api/v1/auth/login"))
        .json(&serde_json::json!({ "login": "admin", "password": password }))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let token = login["access_token"]
        .as_str()
        .ok_or_else(|| anyhow::anyhow!("admin login failed"))?
        .to_owned();
    let me = client
        .get(format!("{base}/api/v1/auth/me"))
        .bearer_auth(&token)
        .send()
        .await?
        .error_for_status()?
        .text()
        .await?;
    let (bare_url, bare_server) = bare(Arc::new(me)).await?;

    let (c, s) = (args.connections, args.seconds);
    let mut targets = vec![
        Target {
            name: "bare actix-web handler, same JSON".into(),
            url: bare_url,
            token: None,
        },
        Target {
            name: "GET /api/v1/auth/me (authenticated)".into(),
            url: format!("{base}/api/v1/auth/me"),
            token: Some(token.clone()),
        },
    ];
    if args.contacts > 0 {
        targets.push(Target {
            name: format!("GET /api/v1/contacts?limit=50 ({} contacts)", args.contacts),
            url: format!("{base}/api/v1/contacts?limit=50"),
            token: Some(token),
        });
    }
    let measured = load(&targets, c, s, args.rounds).await?;
    bare_server.stop(true).await;
    server.abort();

    let floor = measured[0].per_second();
    println!(
        "{c} connections, {s} s per target in {} turns each, one process (server and load share the cores)",
        args.rounds
    );
    println!();
    println!("| target | req/s | p50 | p99 | × bare |");
    println!("|---|---:|---:|---:|---:|");
    for (Target { name, .. }, m) in targets.into_iter().zip(measured) {
        let rate = m.per_second();
        let (p50, p99) = percentiles(m.samples);
        println!(
            "| {name} | {rate:.0} | {p50:.2} ms | {p99:.2} ms | {:.3} |",
            rate / floor
        );
    }
    if let Some(rss) = peak_rss_mib() {
        println!();
        println!("peak RSS of the process: {rss:.0} MiB");
    }
    Ok(())
}
