//! `wework bench desk`: the service desk under load. `--conversations` visitors each open a
//! conversation (assigned to `--agents` online agents with room for all of them), then visitors
//! write `--rate` messages a second for `--seconds` into those open conversations, while
//! `--streams` supervisors follow the live event stream of a real `wework api` server. Every
//! message carries a token; the time from handing it to the desk's intake to its
//! `message.received` event arriving on a stream is its push latency. Prints the rates reached,
//! push latency p50/p99/max per stream and events missing or repeated, for docs/benchmarks.md.
//! `--processes N` starts N more `wework api` processes on the same database (and Redis) and
//! spreads the streams over every server, so events cross processes as in a deployment.
//!
//! The intake is called directly: what a callback adds before it (the signed request, the
//! stored inbound event the worker applies) is the callbacks' cost, measured with them.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use clap::Args as ClapArgs;
use entity::{contacts, users, wework_accounts, wework_instances};
use sea_orm::{ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter, QueryOrder};
use service::{
    Context,
    auth::actor::{Actor, RequestMeta},
    desk::{agents, intake, setup},
};

use super::bench::{fresh_context_with_settings, peak_rss_mib, percentiles};

#[derive(Debug, ClapArgs)]
pub struct DeskArgs {
    /// Open conversations (one visitor each).
    #[arg(long, default_value_t = 1000)]
    conversations: usize,
    /// Online agents sharing them (each with room for its share).
    #[arg(long, default_value_t = 50)]
    agents: usize,
    /// Inbound visitor messages per second during the measured phase.
    #[arg(long, default_value_t = 50)]
    rate: u64,
    /// Seconds of inbound messages.
    #[arg(long, default_value_t = 20)]
    seconds: u64,
    /// Live streams (supervisors) following every event.
    #[arg(long, default_value_t = 2)]
    streams: usize,
    /// Database to use; must be empty. Default: a fresh SQLite file in the temp directory.
    #[arg(long)]
    database_url: Option<String>,
    /// Redis for the live fan-out (as several API processes use it); default none.
    #[arg(long)]
    redis_url: Option<String>,
    /// `wework api` processes started beside this one on the same database and Redis; the
    /// streams are spread over all servers (the messages enter through this one).
    #[arg(long, default_value_t = 0)]
    processes: usize,
}

/// Starts `wework api` with the bench's settings; its base URL once it listens.
async fn spawn_api(config: &std::path::Path) -> anyhow::Result<(tokio::process::Child, String)> {
    use tokio::io::AsyncBufReadExt;
    let mut child = tokio::process::Command::new(std::env::current_exe()?)
        .arg("api")
        .env("WEWORK_CONFIG", config)
        .env_remove("WEWORK_ADMIN_PASSWORD")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()?;
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| anyhow::anyhow!("no stdout"))?;
    let mut lines = tokio::io::BufReader::new(stdout).lines();
    while let Some(line) = lines.next_line().await? {
        if let Some(url) = line.strip_prefix("wework listening on ") {
            let url = url.split_whitespace().next().unwrap_or_default().to_owned();
            // Keep draining its output so it never blocks on a full pipe.
            tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
            return Ok((child, url));
        }
    }
    anyhow::bail!("wework api exited before it listened")
}

fn manager() -> Actor {
    let permissions = ["desk:manage", "desk:work", "desk:supervise"]
        .iter()
        .map(|p| (*p).to_owned())
        .collect();
    Actor {
        user_id: Some(1),
        permissions: Arc::new(permissions),
        ..Actor::system(RequestMeta::default())
    }
}

/// Agent users, a skill group (least busy), the channel on the seeded account, all agents online.
async fn desk(ctx: &Context, account: i64, agents_wanted: usize, seats: i32) -> anyhow::Result<()> {
    let boss = manager();
    let group = setup::create_group(
        ctx,
        &boss,
        setup::SkillGroupInput {
            name: "bench".into(),
            assignment_rule: Some(entity::states::AssignmentRule::LeastBusy),
            inactivity_timeout_secs: Some(7 * 24 * 3600),
            ..Default::default()
        },
    )
    .await?;
    setup::create_channel(
        ctx,
        &boss,
        setup::DeskChannelInput {
            name: "bench".into(),
            account_id: account,
            skill_group_id: group.id,
            ..Default::default()
        },
    )
    .await?;
    let now = ctx.clock.now_db();
    for i in 0..agents_wanted {
        let user = users::Entity::insert(users::ActiveModel {
            username: Set(format!("bench_agent_{i}")),
            password_hash: Set("!".into()),
            status: Set(entity::states::UserStatus::Active),
            failed_login_count: Set(0),
            totp_enabled: Set(false),
            deletion_token: Set(0),
            created_at: Set(now),
            updated_at: Set(now),
            ..Default::default()
        })
        .exec(&ctx.db)
        .await?
        .last_insert_id;
        let agent = agents::create(
            ctx,
            &boss,
            agents::AgentInput {
                user_id: user,
                agent_no: format!("B{i:04}"),
                max_concurrent: Some(seats),
                skill_group_ids: vec![group.id],
            },
        )
        .await?;
        let mut as_agent = manager();
        as_agent.user_id = Some(user);
        agents::set_my_status(ctx, &as_agent, entity::states::AgentStatus::Online).await?;
        let _ = agent;
    }
    Ok(())
}

/// Tokens seen per stream, with when they arrived.
type Arrivals = Arc<Mutex<Vec<HashMap<String, (Instant, usize)>>>>;

/// Follows `/api/v1/desk/events` and notes when each message token arrives (and how often).
async fn follow(
    base: String,
    token: String,
    index: usize,
    arrivals: Arrivals,
) -> anyhow::Result<()> {
    let mut response = reqwest::Client::new()
        .get(format!("{base}/api/v1/desk/events"))
        .bearer_auth(token)
        .send()
        .await?
        .error_for_status()?;
    let mut buffer = String::new();
    while let Some(chunk) = response.chunk().await? {
        let now = Instant::now();
        buffer.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buffer.find("\n\n") {
            let frame: String = buffer.drain(..end + 2).collect();
            if !frame.contains("event: message.received") {
                continue;
            }
            if let Some(start) = frame.find("bench-msg-") {
                let token: String = frame[start..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
                    .collect();
                let mut all = arrivals
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                let entry = all[index].entry(token).or_insert((now, 0));
                entry.1 += 1;
            }
        }
    }
    Ok(())
}

pub async fn desk_bench(args: DeskArgs) -> anyhow::Result<()> {
    let password = uuid::Uuid::new_v4().to_string();
    let redis = args
        .redis_url
        .as_deref()
        .map(|u| {
            format!(
                "[redis]\nurl = \"{u}\"\nkey_prefix = \"bench-desk-{}:\"\n",
                uuid::Uuid::new_v4().simple()
            )
        })
        .unwrap_or_default();
    let (ctx, settings) = fresh_context_with_settings(
        args.database_url,
        "desk",
        &format!("[server]\nport = 0\n{redis}"),
        &password,
    )
    .await?;
    super::bench::seed_contacts(&ctx, args.conversations).await?;
    let account = wework_accounts::Entity::find()
        .one(&ctx.db)
        .await?
        .ok_or_else(|| anyhow::anyhow!("no account"))?;
    let instance = wework_instances::Entity::find_by_id(account.instance_id)
        .one(&ctx.db)
        .await?
        .ok_or_else(|| anyhow::anyhow!("no instance"))?;
    let visitors: Vec<(i64, String)> = contacts::Entity::find()
        .filter(contacts::Column::AccountId.eq(account.id))
        .order_by_asc(contacts::Column::Id)
        .all(&ctx.db)
        .await?
        .into_iter()
        .map(|c| (c.id, c.wxid))
        .collect();
    let seats = i32::try_from(args.conversations.div_ceil(args.agents.max(1)))
        .unwrap_or(i32::MAX)
        .clamp(1, 100);
    desk(&ctx, account.id, args.agents, seats).await?;

    let app = api::Application::build(ctx.clone())?;
    let base = format!("http://127.0.0.1:{}", app.port());
    let server = tokio::spawn(app.run_until_stopped());
    let mut servers = vec![base.clone()];
    let mut children = Vec::new();
    let config =
        std::env::temp_dir().join(format!("wework-bench-desk-{}.toml", std::process::id()));
    if args.processes > 0 {
        std::fs::write(&config, &settings)?;
        for _ in 0..args.processes {
            let (child, url) = spawn_api(&config).await?;
            children.push(child);
            servers.push(url);
        }
        println!(
            "streams spread over {} API processes: {}",
            servers.len(),
            servers.join(", ")
        );
    }
    let login: serde_json::Value = reqwest::Client::new()
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
    let arrivals: Arrivals = Arc::new(Mutex::new(vec![HashMap::new(); args.streams]));
    let followers: Vec<_> = (0..args.streams)
        .map(|i| {
            let server = servers[i % servers.len()].clone();
            tokio::spawn(follow(server, token.clone(), i, arrivals.clone()))
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(500)).await;

    let say = |i: usize, n: usize| {
        let (ctx, instance, account) = (ctx.clone(), instance.clone(), account.clone());
        let (contact, wxid) = visitors[i % visitors.len()].clone();
        async move {
            let token = format!("bench-msg-{i}-{n}");
            intake::on_inbound(
                &ctx,
                intake::Inbound {
                    instance: &instance,
                    account: &account,
                    from: &wxid,
                    contact_id: Some(contact),
                    msgtype: "text",
                    content: Some(&token),
                    remote_id: Some(&token),
                },
            )
            .await
            .map(|_| token)
        }
    };
    // Phase 1: every visitor opens a conversation.
    let opened_at = Instant::now();
    for i in 0..visitors.len() {
        say(i, 0).await?;
    }
    let opening = opened_at.elapsed();
    println!(
        "opened {} conversations in {:.1} s ({:.0}/s)",
        visitors.len(),
        opening.as_secs_f64(),
        visitors.len() as f64 / opening.as_secs_f64()
    );

    // Phase 2: `rate` messages a second into the open conversations, open loop.
    let sent: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let total = usize::try_from(args.rate * args.seconds).unwrap_or(usize::MAX);
    let interval = Duration::from_secs_f64(1.0 / args.rate.max(1) as f64);
    let started = Instant::now();
    let mut handles = Vec::with_capacity(total);
    for n in 0..total {
        tokio::time::sleep_until(
            (started + interval * u32::try_from(n).unwrap_or(u32::MAX)).into(),
        )
        .await;
        let (sent, message) = (sent.clone(), say(n, n + 1));
        handles.push(tokio::spawn(async move {
            let at = Instant::now();
            let token = message.await?;
            sent.lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .insert(token, at);
            anyhow::Ok(())
        }));
    }
    for h in handles {
        h.await??;
    }
    let elapsed = started.elapsed();
    // Let the last events arrive.
    tokio::time::sleep(Duration::from_secs(3)).await;
    for f in &followers {
        f.abort();
    }
    server.abort();
    drop(children);
    let _ = std::fs::remove_file(&config);

    let sent = sent
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    let arrivals = arrivals
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    println!(
        "{} inbound messages in {:.1} s ({:.1}/s asked {}/s), {} agents, {} open conversations, {} streams",
        sent.len(),
        elapsed.as_secs_f64(),
        sent.len() as f64 / elapsed.as_secs_f64(),
        args.rate,
        args.agents,
        visitors.len(),
        args.streams
    );
    println!();
    println!("| stream | process | received | missing | repeated | push p50 | push p99 | max |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    for (i, seen) in arrivals.iter().enumerate() {
        let mut samples = Vec::new();
        let (mut missing, mut repeated) = (0, 0);
        for (token, at) in &sent {
            match seen.get(token) {
                Some((arrived, count)) => {
                    samples.push(arrived.saturating_duration_since(*at));
                    repeated += count - 1;
                }
                None => missing += 1,
            }
        }
        let max = samples.iter().max().copied().unwrap_or_default();
        let received = samples.len();
        let (p50, p99) = percentiles(samples);
        println!(
            "| {} | {} | {received} | {missing} | {repeated} | {p50:.1} ms | {p99:.1} ms | {:.1} ms |",
            i + 1,
            i % servers.len() + 1,
            max.as_secs_f64() * 1000.0
        );
    }
    if let Some(rss) = peak_rss_mib() {
        println!();
        println!("peak RSS of the process: {rss:.0} MiB");
    }
    Ok(())
}
