//! `wework bench api`: the cost of the API's request path. In one process and one run, the same
//! closed-loop load (`--connections` clients, each sending its next request when the last one
//! answered, for `--seconds`) goes to a bare actix-web handler returning the JSON that
//! `GET /api/v1/auth/me` returns, then to the real authenticated route (and, with `--contacts`,
//! to `GET /api/v1/contacts?limit=50` over that many seeded contacts). Prints req/s, p50/p99
//! latency and the ratio to the bare handler, for docs/benchmarks.md. The load generator shares
//! the machine with the server, for both targets alike: the ratio is the figure to compare.

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
    /// Also time `GET /api/v1/contacts?limit=50` over this many seeded contacts (0: skip).
    #[arg(long, default_value_t = 0)]
    contacts: usize,
    /// Database to use; must be empty. Default: a fresh SQLite file in the temp directory.
    #[arg(long)]
    database_url: Option<String>,
}

/// What one target did under the load.
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

/// `connections` clients request `url` back to back for `seconds`; every answer must be a 200.
async fn load(
    url: &str,
    token: Option<&str>,
    connections: usize,
    seconds: u64,
) -> anyhow::Result<Measured> {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(connections)
        .build()?;
    let run = |window: Duration, keep: bool| {
        let workers: Vec<_> = (0..connections)
            .map(|_| {
                let (client, url) = (client.clone(), url.to_owned());
                let token = token.map(str::to_owned);
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
                        if keep {
                            samples.push(started.elapsed());
                        }
                    }
                    Ok(samples)
                })
            })
            .collect();
        async move {
            let mut all = Vec::new();
            for w in workers {
                all.extend(w.await??);
            }
            anyhow::Ok(all)
        }
    };
    run(Duration::from_secs(1), false).await?;
    let started = Instant::now();
    let samples = run(Duration::from_secs(seconds), true).await?;
    Ok(Measured {
        requests: samples.len(),
        elapsed: started.elapsed(),
        samples,
    })
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
        super::bench::analyze(&ctx, &["contacts", "contact_tags", "tags"]).await?;
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
    let mut rows = vec![(
        "bare actix-web handler, same JSON".to_owned(),
        load(&bare_url, None, c, s).await?,
    )];
    rows.push((
        "GET /api/v1/auth/me (authenticated)".to_owned(),
        load(&format!("{base}/api/v1/auth/me"), Some(&token), c, s).await?,
    ));
    if args.contacts > 0 {
        rows.push((
            format!("GET /api/v1/contacts?limit=50 ({} contacts)", args.contacts),
            load(
                &format!("{base}/api/v1/contacts?limit=50"),
                Some(&token),
                c,
                s,
            )
            .await?,
        ));
    }
    bare_server.stop(true).await;
    server.abort();

    let floor = rows[0].1.per_second();
    println!("{c} connections, {s} s per target, one process (server and load share the cores)");
    println!();
    println!("| target | req/s | p50 | p99 | × bare |");
    println!("|---|---:|---:|---:|---:|");
    for (name, m) in rows {
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
