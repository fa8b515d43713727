//! `wework bench broadcast`: one broadcast to N receivers through the real engine (task creation,
//! audience expansion, leased chunks, driver sends, one transaction per chunk) against a
//! simulator running as its own process, compared with the rate one client gets from the same
//! simulator sending directly.

use entity::states::MessageType;
use std::{
    process::Stdio,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use clap::Args as ClapArgs;
use futures_util::StreamExt;
use service::{
    Context,
    auth::actor::{Actor, RequestMeta},
    dispatch::Phases,
    drivers::{Channel, OutboundMessage},
};
use tokio::io::{AsyncBufReadExt, BufReader};

use super::bench::{analyze, fresh_context, peak_rss_mib, percentiles};

#[derive(Debug, ClapArgs)]
pub struct BroadcastArgs {
    /// Receivers of the broadcast (contacts on the simulator).
    #[arg(long, default_value_t = 10_000)]
    receivers: usize,
    /// Sending accounts the receivers are spread over.
    #[arg(long, default_value_t = 10)]
    accounts: usize,
    /// Chains of dispatch jobs working on the run at once (`dispatch.chains_per_run`): chunks in
    /// flight at once.
    #[arg(long, default_value_t = 4)]
    chains: u32,
    /// Receivers per chunk and sends in flight per chunk.
    #[arg(long, default_value_t = 200)]
    chunk_size: u64,
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Database to use; must be empty. Default: a fresh SQLite file in the temp directory.
    #[arg(long)]
    database_url: Option<String>,
    /// Redis for the rate limiter and caches (rate limits are off; leases stay in SQL).
    #[arg(long)]
    redis_url: Option<String>,
    /// Direct sends for the simulator's baseline.
    #[arg(long, default_value_t = 20_000)]
    baseline: usize,
    /// Rate-limited mode: each account sends at most this many a minute (WeCom allows about 30
    /// per member), enforced by the engine's limiter and by the simulator, which refuses what
    /// goes faster. The run must then take what the rate implies; 0 = rate limits off, to
    /// measure the engine's own speed.
    #[arg(long, default_value_t = 0)]
    rate_per_minute: u32,
    /// With --rate-per-minute: the longest a chunk waits for a slot (`dispatch.max_slot_wait_secs`).
    #[arg(long, default_value_t = 30)]
    max_slot_wait_secs: u64,
}

/// A `wework sim` child process; killed when dropped.
pub(super) struct SimProcess {
    child: tokio::process::Child,
    base: String,
}

impl SimProcess {
    /// `rate_per_minute` > 0: the simulator refuses an account's sends beyond it (429).
    pub(super) async fn start(
        accounts: usize,
        contacts: usize,
        rate_per_minute: u32,
    ) -> anyhow::Result<Self> {
        let mut command = tokio::process::Command::new(std::env::current_exe()?);
        command
            .args(["sim", "--port", "0", "--groups", "0", "--members", "0"])
            .args(["--accounts", &accounts.to_string()])
            .args(["--contacts", &contacts.to_string()]);
        if rate_per_minute > 0 {
            command.args(["--rate-limit-per-minute", &rate_per_minute.to_string()]);
        }
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| anyhow::anyhow!("no simulator stdout"))?;
        let mut lines = BufReader::new(stdout).lines();
        while let Some(line) = lines.next_line().await? {
            if let Some(rest) = line.strip_prefix("wework sim listening on ") {
                let base = rest
                    .split_whitespace()
                    .next()
                    .unwrap_or_default()
                    .to_owned();
                tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
                return Ok(Self { child, base });
            }
        }
        anyhow::bail!("the simulator did not start")
    }

    async fn deliveries(&self) -> anyhow::Result<serde_json::Value> {
        let stats: serde_json::Value = reqwest::get(format!("{}/_sim/stats", self.base))
            .await?
            .json()
            .await?;
        Ok(stats["deliveries"].clone())
    }
}

impl Drop for SimProcess {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

/// An operator who may register instances and create and read tasks.
pub(super) fn operator() -> Actor {
    Actor {
        user_id: Some(1),
        permissions: Arc::new(
            [
                "instances:create",
                "instances:control",
                "tasks:create",
                "tasks:read",
            ]
            .iter()
            .map(|p| (*p).to_owned())
            .collect(),
        ),
        ..Actor::system(RequestMeta::default())
    }
}

pub async fn broadcast_bench(args: BroadcastArgs) -> anyhow::Result<()> {
    let per_account = args.receivers.div_ceil(args.accounts.max(1));
    let limited = args.rate_per_minute > 0;
    // The simulator counts per calendar minute; network jitter can carry one send spaced
    // exactly at the rate across a minute's boundary, so it allows one more.
    let sim_limit = if limited { args.rate_per_minute + 1 } else { 0 };
    let sim = SimProcess::start(args.accounts, per_account, sim_limit).await?;
    let mut extra = format!(
        "[dispatch]\nrate_limits = {limited}\nmax_slot_wait_secs = {}\nchunk_size = {}\nconcurrency = {}\nchains_per_run = {}\njobs_in_flight = {}\n{}",
        args.max_slot_wait_secs,
        args.chunk_size,
        args.concurrency,
        args.chains,
        args.chains.max(8),
        queue_setting("broadcast"),
    );
    if let Some(redis) = &args.redis_url {
        extra.push_str(&format!("[redis]\nurl = \"{redis}\"\n"));
    }
    let ctx = fresh_context(args.database_url.clone(), "broadcast", &extra).await?;
    let actor = operator();
    let started = Instant::now();
    let instance_id = synced_instance(&ctx, &actor, &sim).await?;
    let total = per_account * args.accounts;
    // As autovacuum would on a live system (it is off on some CI servers).
    analyze(&ctx, &["contacts", "contact_tags"]).await?;
    println!(
        "synced {total} contacts on {} accounts in {:.1} s",
        args.accounts,
        started.elapsed().as_secs_f64()
    );

    // The baseline measures the simulator flat out, which a rate-limited run does not approach.
    let baseline = if limited {
        None
    } else {
        Some(baseline(&ctx, instance_id, &args).await?)
    };
    let before = sim.deliveries().await?;

    let mut task_input = serde_json::json!({
        "name": "bench broadcast", "task_type": "broadcast",
        "content": "{{ nickname }}您好，双十一会员专享价今晚开抢",
        "audience": { "filter": { "instance_ids": [instance_id] } }
    });
    if limited {
        task_input["rate_per_minute"] = args.rate_per_minute.into();
    }
    let task_input = serde_json::from_value(task_input)?;
    let started = Instant::now();
    let task = service::tasks::create(&ctx, &actor, task_input).await?;
    service::tasks::schedule::tick(&ctx).await?;
    let run = service::tasks::expand::claim(&ctx, "bench")
        .await?
        .ok_or_else(|| anyhow::anyhow!("the task's run was not created"))?;
    service::tasks::expand::expand(&ctx, &run).await?;
    let expanded = started.elapsed();
    analyze(&ctx, &["message_receivers", "messages"]).await?;

    let chunks: Arc<Mutex<Vec<(Duration, usize, Phases)>>> = Arc::default();
    let observer: worker::dispatch::ChunkObserver = {
        let chunks = chunks.clone();
        Arc::new(move |report, took| {
            if let Ok(mut chunks) = chunks.lock() {
                chunks.push((took, report.claimed, report.phases));
            }
        })
    };
    let send_started = Instant::now();
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let dispatcher = tokio::spawn(worker::dispatch::run(
        ctx.clone(),
        "bench".into(),
        stopped,
        Some(observer),
    ));
    let finished = wait_for_run(&ctx, &actor, task.id, total).await;
    stop.send(true).ok();
    dispatcher.await?;
    finished?;
    let sending = send_started.elapsed();
    let elapsed = started.elapsed();
    let view = service::tasks::get(&ctx, &actor, task.id).await?;
    let after = sim.deliveries().await?;
    let count = |v: &serde_json::Value, k: &str| v[k].as_u64().unwrap_or(0);
    let delivered = count(&after, "delivered") - count(&before, "delivered");
    // Attempts the simulator refused or replayed: with a correct limiter, next to none.
    let extra_attempts = count(&after, "attempts") - count(&before, "attempts") - delivered;
    anyhow::ensure!(
        view.counts.success == i32::try_from(total)? && delivered == total as u64,
        "incomplete: {:?}, simulator delivered {delivered}",
        view.counts
    );

    let chunks = std::mem::take(&mut *chunks.lock().map_err(|_| anyhow::anyhow!("poisoned"))?);
    let chunk_ms: Vec<Duration> = chunks.iter().map(|(d, ..)| *d).collect();
    // Every receiver of a chunk is claimed at its start and acknowledged by its commit.
    let per_receiver: Vec<Duration> = chunks
        .iter()
        .flat_map(|(d, n, _)| std::iter::repeat_n(*d, *n))
        .collect();
    let phases = chunks
        .iter()
        .fold(Phases::default(), |sum, (.., p)| sum + *p);
    let (chunk_p50, chunk_p99) = percentiles(chunk_ms);
    let (p50, p99) = percentiles(per_receiver);
    println!(
        "\n| receivers | expand s | send s | total s | receivers/s (send) | receivers/s (end to end) | claim→ack p50 ms | p99 ms | chunks | chunk p50 ms | p99 ms |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    println!(
        "| {total} | {:.1} | {:.1} | {:.1} | {:.0} | {:.0} | {p50:.0} | {p99:.0} | {} | {chunk_p50:.0} | {chunk_p99:.0} |",
        expanded.as_secs_f64(),
        sending.as_secs_f64(),
        elapsed.as_secs_f64(),
        total as f64 / sending.as_secs_f64(),
        total as f64 / elapsed.as_secs_f64(),
        chunks.len(),
    );
    print_phases(&phases, total, chunks.len());
    if let Some(baseline) = baseline {
        println!(
            "\nsimulator baseline: {baseline:.0} sends/s from one client ({} in flight); the engine reached {:.0}% of it",
            args.concurrency * args.chains as usize,
            100.0 * total as f64 / sending.as_secs_f64() / baseline
        );
    } else {
        // Each account's sends are one interval apart: its last goes (n - 1) intervals after its
        // first.
        let implied =
            (per_account.saturating_sub(1)) as f64 * 60.0 / f64::from(args.rate_per_minute);
        println!(
            "\nrate-limited: {} accounts × {per_account} receivers at {}/min each: the rate implies {implied:.1} s of sending, it took {:.1} s ({:+.1}%); the simulator refused or replayed {extra_attempts} attempts",
            args.accounts,
            args.rate_per_minute,
            sending.as_secs_f64(),
            100.0 * (sending.as_secs_f64() / implied - 1.0)
        );
    }
    if let Some(rss) = peak_rss_mib() {
        println!("peak RSS of the engine process: {rss:.0} MiB");
    }
    Ok(())
}

/// Where a receiver's time went: each chunk phase's wall time per receiver and as a share of the
/// chunks' time, then the per-receiver steps inside sending (these overlap, `concurrency` at a
/// time).
fn print_phases(p: &Phases, receivers: usize, chunks: usize) {
    let per = |d: Duration| d.as_secs_f64() * 1e6 / receivers.max(1) as f64;
    let chunk_total = p.claim + p.prepare + p.sending + p.record + p.finish;
    let share = |d: Duration| 100.0 * d.as_secs_f64() / chunk_total.as_secs_f64().max(1e-9);
    println!("\nwhere the {chunks} chunks' time went (µs per receiver, share of chunk time):");
    println!("| phase | µs per receiver | share |");
    println!("|---|---:|---:|");
    for (name, d) in [
        ("claim (read run and task, claim receivers)", p.claim),
        ("prepare (templates, accounts, drivers)", p.prepare),
        ("sending (first send to last answer)", p.sending),
        (
            "record (outcomes, counters, messages: one transaction)",
            p.record,
        ),
        ("finish (settle the run, look for more)", p.finish),
    ] {
        println!("| {name} | {:.1} | {:.0}% |", per(d), share(d));
    }
    println!("inside sending, summed over receivers (they overlap):");
    for (name, d) in [
        (
            "render and checks (account, cap, quota)",
            p.render_and_checks,
        ),
        ("rate limiter", p.rate_limiter),
        ("send (the instance's answer)", p.send),
    ] {
        println!("| {name} | {:.1} | |", per(d));
    }
}

/// The `[worker]` setting that puts the dispatch queue in a file of this run.
pub(super) fn queue_setting(tag: &str) -> String {
    let path = std::env::temp_dir().join(format!(
        "wework-bench-{tag}-queue-{}.db",
        std::process::id()
    ));
    format!("[worker]\nqueue_path = \"{}\"\n", path.display())
}

/// Registers the simulator as an agent instance and syncs its accounts and contacts; returns
/// the instance's id.
pub(super) async fn synced_instance(
    ctx: &Context,
    actor: &Actor,
    sim: &SimProcess,
) -> anyhow::Result<i64> {
    let input = serde_json::from_value(serde_json::json!({
        "name": "bench agent", "kind": "agent", "api_url": format!("{}/agent", sim.base),
        "config": { "agent_secret": "sim-agent-secret" }
    }))?;
    let instance = service::instances::manage::create(ctx, actor, input).await?;
    service::sync::request(ctx, actor, instance.id).await?;
    let claimed = service::sync::claim_next(ctx, "bench")
        .await?
        .ok_or_else(|| anyhow::anyhow!("sync run not claimable"))?;
    service::sync::execute(ctx, &claimed, "bench").await?;
    Ok(instance.id)
}

/// Waits until every receiver of the task is written, or nothing moved for a minute.
async fn wait_for_run(
    ctx: &Context,
    actor: &Actor,
    task_id: i64,
    total: usize,
) -> anyhow::Result<()> {
    let (mut last, mut last_change) = (-1, Instant::now());
    loop {
        let counts = service::tasks::get(ctx, actor, task_id).await?.counts;
        let done = counts.success + counts.failed + counts.skipped;
        if usize::try_from(done).unwrap_or(0) >= total {
            return Ok(());
        }
        if done != last {
            (last, last_change) = (done, Instant::now());
        }
        anyhow::ensure!(
            last_change.elapsed() < Duration::from_secs(60),
            "the broadcast stalled at {counts:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Sends per second one client gets from the simulator with the engine's parallelism, through
/// the same driver (signing, idempotency keys), without the database.
async fn baseline(ctx: &Context, instance_id: i64, args: &BroadcastArgs) -> anyhow::Result<f64> {
    let instance = service::instances::find_live(&ctx.db, instance_id).await?;
    let driver: Arc<dyn service::drivers::InstanceDriver> =
        Arc::from(service::drivers::for_instance(ctx, &instance).await?);
    let count = args.baseline;
    let per_account = args.receivers.div_ceil(args.accounts.max(1));
    let started = Instant::now();
    let failures = futures_util::stream::iter(0..count)
        .map(|i| {
            let driver = driver.clone();
            let account = i % args.accounts;
            async move {
                let message = OutboundMessage {
                    account_wxid: format!("sim_user_{account}"),
                    to: format!("wm_42_{account}_{}", (i / args.accounts) % per_account),
                    to_group: false,
                    channel: Channel::Direct,
                    msgtype: MessageType::Text,
                    payload: serde_json::json!({ "content": "baseline" }),
                    idempotency_key: format!("baseline-{i}"),
                };
                driver.send(&message).await.is_err()
            }
        })
        .buffer_unordered(args.concurrency * args.chains as usize)
        .filter(|failed| std::future::ready(*failed))
        .count()
        .await;
    let rate = count as f64 / started.elapsed().as_secs_f64();
    anyhow::ensure!(failures == 0, "{failures} baseline sends failed");
    Ok(rate)
}
