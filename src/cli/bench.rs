//! `wework bench`: measured runs, printed as tables for docs/benchmarks.md.
//!
//! `bench contacts` seeds N contacts into a fresh database and times the searches the API offers
//! (keyset pages, filters, tags any/all, keyword). `bench sync` starts a simulator and times a
//! full sync of N contacts through the real driver and sync code. `bench broadcast` lives in
//! `bench_broadcast`, `bench login-flood` in `bench_login`.

use entity::states::{AccountStatus, ContactType, FriendStatus, InstanceKind, InstanceStatus};
use std::{
    collections::BTreeSet,
    sync::Arc,
    time::{Duration, Instant},
};

use clap::{Args as ClapArgs, Subcommand};
use entity::{contact_tags, contacts, tags, wework_accounts, wework_instances};
use sea_orm::{ActiveValue::Set, EntityTrait};
use service::{
    Context,
    auth::actor::{Actor, RequestMeta},
    config::Settings,
    contacts::ContactFilter,
    pagination::PageRequest,
};

#[derive(Debug, Subcommand)]
pub enum Action {
    /// Search and filter latency over N contacts.
    Contacts(ContactsArgs),
    /// Full sync of N contacts from a simulator.
    Sync(SyncArgs),
    /// One broadcast to N receivers through the engine, against a simulator process.
    Broadcast(super::bench_broadcast::BroadcastArgs),
    /// Latency of an authenticated request while many clients log in at once.
    LoginFlood(super::bench_login::LoginFloodArgs),
    /// Requests per second and latency of the API's hot path against a bare handler.
    Api(super::bench_api::ApiArgs),
    /// Open conversations, inbound messages per second and the live push latency of the desk.
    Desk(super::bench_desk::DeskArgs),
    /// How late scheduled tasks and cron firings start, run by the whole worker.
    Schedule(super::bench_schedule::ScheduleArgs),
}

#[derive(Debug, ClapArgs)]
pub struct ContactsArgs {
    #[arg(long, default_value_t = 100_000)]
    count: usize,
    /// Database to fill; must be empty. Default: a fresh SQLite file in the temp directory.
    #[arg(long)]
    database_url: Option<String>,
    /// Timed repetitions per query.
    #[arg(long, default_value_t = 30)]
    repeat: usize,
    /// Reuse contacts an earlier run seeded into --database-url instead of seeding again.
    #[arg(long)]
    reuse: bool,
}

#[derive(Debug, ClapArgs)]
pub struct SyncArgs {
    #[arg(long, default_value_t = 100_000)]
    contacts: usize,
    #[arg(long, default_value_t = 1)]
    accounts: usize,
    #[arg(long)]
    database_url: Option<String>,
}

pub async fn run(action: Action) -> anyhow::Result<()> {
    // Each bench's future is boxed: nested in one match, their layouts exceed the compiler's
    // query depth in release builds.
    match action {
        Action::Contacts(args) => Box::pin(contacts_bench(args)).await,
        Action::Sync(args) => Box::pin(sync_bench(args)).await,
        Action::Broadcast(args) => Box::pin(super::bench_broadcast::broadcast_bench(args)).await,
        Action::LoginFlood(args) => Box::pin(super::bench_login::login_flood_bench(args)).await,
        Action::Api(args) => Box::pin(super::bench_api::api_bench(args)).await,
        Action::Desk(args) => Box::pin(super::bench_desk::desk_bench(args)).await,
        Action::Schedule(args) => Box::pin(super::bench_schedule::schedule_bench(args)).await,
    }
}

/// A fresh database (migrated, admin created) with `extra` TOML over the bench settings.
pub(super) async fn fresh_context(
    database_url: Option<String>,
    tag: &str,
    extra: &str,
) -> anyhow::Result<Context> {
    fresh_context_as(database_url, tag, extra, &uuid::Uuid::new_v4().to_string()).await
}

/// `fresh_context` with a known admin password.
pub(super) async fn fresh_context_as(
    database_url: Option<String>,
    tag: &str,
    extra: &str,
    admin_password: &str,
) -> anyhow::Result<Context> {
    Ok(
        fresh_context_with_settings(database_url, tag, extra, admin_password)
            .await?
            .0,
    )
}

/// A fresh context, and the settings file (TOML) it was made from: other `wework` processes
/// started with it share its database, Redis and master key.
pub(super) async fn fresh_context_with_settings(
    database_url: Option<String>,
    tag: &str,
    extra: &str,
    admin_password: &str,
) -> anyhow::Result<(Context, String)> {
    let url = database_url.unwrap_or_else(|| {
        let path =
            std::env::temp_dir().join(format!("wework-bench-{tag}-{}.db", std::process::id()));
        format!("sqlite://{}?mode=rwc", path.display())
    });
    let key = service::crypto::sealer::Sealer::generate_key();
    let spool = std::env::temp_dir().join(format!("wework-bench-spool-{}", std::process::id()));
    let spool = spool.display();
    let toml = format!(
        "[database]\nurl = \"{url}\"\nmax_connections = 8\n[secrets]\nmaster_key = \"{key}\"\n[outbound]\nallowed_networks = [\"127.0.0.1\"]\n[log]\nlevel = \"warn\"\n[elasticsearch]\nspool_dir = \"{spool}/logs\"\n[influxdb]\nspool_dir = \"{spool}/metrics\"\n[instances]\nmetrics_spool_dir = \"{spool}/sql-metrics\"\n{extra}"
    );
    let settings = Settings::from_toml(&toml)?;
    println!("database: {}", settings.backend_label());
    let (ctx, _) = crate::prepare(settings, Some(admin_password.to_owned())).await?;
    Ok((ctx, toml))
}

fn reader() -> Actor {
    let permissions: BTreeSet<String> = ["contacts:read", "instances:read", "instances:control"]
        .iter()
        .map(|p| (*p).to_owned())
        .collect();
    Actor {
        user_id: Some(1),
        permissions: Arc::new(permissions),
        ..Actor::system(RequestMeta::default())
    }
}

/// Peak resident memory of this process (Linux), in MiB.
pub fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kb: f64 = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some(kb / 1024.0)
}

/// p50 and p99 of `samples`, in milliseconds.
pub fn percentiles(mut samples: Vec<Duration>) -> (f64, f64) {
    samples.sort();
    let at = |q: f64| {
        let i = ((samples.len() as f64 - 1.0) * q).round() as usize;
        samples.get(i).map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    };
    (at(0.50), at(0.99))
}

/// Seeds `count` contacts (one instance and account, a few tags), as `bench contacts` does.
pub(super) async fn seed_contacts(ctx: &Context, count: usize) -> anyhow::Result<()> {
    seed(ctx, count).await.map(|_| ())
}

/// The bench's contacts, for tests that need volume: into an empty database, ids from 1; tag
/// *k* of the ten returned is on every (*k*+2)-th contact. Returns the instance and the tags.
pub async fn seed_tagged_contacts(ctx: &Context, count: usize) -> anyhow::Result<(i64, Vec<i64>)> {
    seed(ctx, count).await
}

async fn seed(ctx: &Context, count: usize) -> anyhow::Result<(i64, Vec<i64>)> {
    let now = ctx.clock.now_db();
    let instance = wework_instances::Entity::insert(wework_instances::ActiveModel {
        instance_uuid: Set(uuid::Uuid::new_v4()),
        name: Set("bench".into()),
        kind: Set(InstanceKind::Agent),
        status: Set(InstanceStatus::Offline),
        enabled: Set(false),
        max_accounts: Set(10),
        current_accounts: Set(1),
        heartbeat_interval: Set(30),
        missed_heartbeats: Set(0),
        restart_count: Set(0),
        total_messages: Set(0),
        today_messages: Set(0),
        created_by: Set(1),
        deletion_token: Set(0),
        created_at: Set(now),
        updated_at: Set(now),
        ..Default::default()
    })
    .exec(&ctx.db)
    .await?
    .last_insert_id;
    let account = wework_accounts::Entity::insert(wework_accounts::ActiveModel {
        instance_id: Set(instance),
        wxid: Set("bench_user".into()),
        status: Set(AccountStatus::Online),
        is_logged_in: Set(true),
        contact_count: Set(0),
        group_count: Set(0),
        total_messages: Set(0),
        today_messages: Set(0),
        created_at: Set(now),
        updated_at: Set(now),
        ..Default::default()
    })
    .exec(&ctx.db)
    .await?
    .last_insert_id;
    let mut tag_ids = Vec::new();
    for i in 0..10 {
        let id = tags::Entity::insert(tags::ActiveModel {
            instance_id: Set(0),
            group_name: Set(String::new()),
            name: Set(format!("tag{i}")),
            sort_order: Set(0),
            created_at: Set(now),
            updated_at: Set(now),
            ..Default::default()
        })
        .exec(&ctx.db)
        .await?
        .last_insert_id;
        tag_ids.push(id);
    }
    const SURNAMES: &[&str] = &["王", "李", "张", "刘", "陈", "杨", "黄", "赵", "吴", "周"];
    let started = Instant::now();
    let batch = 500;
    for start in (0..count).step_by(batch) {
        let end = (start + batch).min(count);
        let rows = (start..end).map(|i| contacts::ActiveModel {
            instance_id: Set(instance),
            account_id: Set(account),
            wxid: Set(format!("wm_bench_{i}")),
            nickname: Set(Some(format!("{}{i}", SURNAMES[i % SURNAMES.len()]))),
            contact_type: Set(if i % 10 == 0 {
                ContactType::Friend
            } else {
                ContactType::External
            }),
            friend_status: Set(FriendStatus::Normal),
            is_star: Set(i % 50 == 0),
            is_top: Set(false),
            is_blocked: Set(false),
            chat_count: Set(0),
            created_at: Set(now),
            updated_at: Set(now),
            ..Default::default()
        });
        contacts::Entity::insert_many(rows)
            .exec_without_returning(&ctx.db)
            .await?;
        let first: i64 = i64::try_from(start).unwrap_or(0);
        let links = (start..end).flat_map(|i| {
            let contact = first + 1 + i64::try_from(i - start).unwrap_or(0);
            // Tag k on every (k+2)-th contact: tag0 on half, tag9 on a eleventh.
            tag_ids
                .iter()
                .enumerate()
                .filter(move |(k, _)| i % (k + 2) == 0)
                .map(move |(_, t)| contact_tags::ActiveModel {
                    contact_id: Set(contact),
                    tag_id: Set(*t),
                    created_at: Set(now),
                })
        });
        let links: Vec<_> = links.collect();
        for chunk in links.chunks(500) {
            contact_tags::Entity::insert_many(chunk.to_vec())
                .exec_without_returning(&ctx.db)
                .await?;
        }
        if end % 100_000 == 0 {
            println!(
                "  seeded {end} contacts ({:.0}/s)",
                end as f64 / started.elapsed().as_secs_f64()
            );
        }
    }
    println!(
        "seeded {count} contacts in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok((instance, tag_ids))
}

/// The instance and tags an earlier run seeded.
async fn seeded(ctx: &Context) -> anyhow::Result<(i64, Vec<i64>)> {
    use sea_orm::{ColumnTrait, QueryFilter, QueryOrder};
    let instance = wework_instances::Entity::find()
        .filter(wework_instances::Column::Name.eq("bench"))
        .one(&ctx.db)
        .await?
        .ok_or_else(|| anyhow::anyhow!("no seeded bench data in this database"))?;
    let tags = tags::Entity::find()
        .filter(tags::Column::Name.starts_with("tag"))
        .order_by_asc(tags::Column::Id)
        .all(&ctx.db)
        .await?
        .into_iter()
        .map(|t| t.id)
        .collect();
    Ok((instance.id, tags))
}

/// Fresh planner statistics, as autovacuum (PostgreSQL) or a later ANALYZE would give a live
/// system; timings right after a bulk load are otherwise meaningless.
pub(super) async fn analyze(ctx: &Context, tables: &[&str]) -> anyhow::Result<()> {
    use sea_orm::{ConnectionTrait, DatabaseBackend};
    let list = tables.join(", ");
    let sql = match ctx.db.get_database_backend() {
        DatabaseBackend::Postgres => format!("ANALYZE {list}"),
        DatabaseBackend::MySql => format!("ANALYZE TABLE {list}"),
        _ => "ANALYZE".to_owned(),
    };
    ctx.db.execute_unprepared(&sql).await?;
    Ok(())
}

/// `analyze`, and on PostgreSQL a `VACUUM` too, as autovacuum gives a live server's tables
/// after a load (it vacuums after inserts since PostgreSQL 13): the visibility map is then
/// set, index-only scans read no heap pages, and the planner costs its joins on that (the
/// contact list's tags then hash each contact's links instead of the tags once: 10-30% slower,
/// docs/benchmarks.md). The read benches (`api`, `contacts`) measure the state a live server
/// is in; `broadcast` keeps `analyze`, as its writes begin at once on tables it just filled.
pub(super) async fn vacuum_analyze(ctx: &Context, tables: &[&str]) -> anyhow::Result<()> {
    use sea_orm::{ConnectionTrait, DatabaseBackend};
    if ctx.db.get_database_backend() != DatabaseBackend::Postgres {
        return analyze(ctx, tables).await;
    }
    ctx.db
        .execute_unprepared(&format!("VACUUM (ANALYZE) {}", tables.join(", ")))
        .await?;
    Ok(())
}

async fn contacts_bench(args: ContactsArgs) -> anyhow::Result<()> {
    let ctx = fresh_context(args.database_url, "contacts", "").await?;
    let (instance, tags) = if args.reuse {
        seeded(&ctx).await?
    } else {
        seed(&ctx, args.count).await?
    };
    vacuum_analyze(&ctx, &["contacts", "contact_tags"]).await?;
    let actor = reader();
    let keyword = |q: &str| ContactFilter {
        q: Some(q.into()),
        ..Default::default()
    };
    let cases: Vec<(&str, ContactFilter)> = vec![
        ("first page, no filter", ContactFilter::default()),
        (
            "by instance",
            ContactFilter {
                instance_id: Some(instance),
                ..Default::default()
            },
        ),
        (
            "starred",
            ContactFilter {
                is_star: Some(true),
                ..Default::default()
            },
        ),
        (
            "tags any (2)",
            ContactFilter {
                tags_any: Some(format!("{},{}", tags[8], tags[9])),
                ..Default::default()
            },
        ),
        (
            "tags all (2)",
            ContactFilter {
                tags_all: Some(format!("{},{}", tags[1], tags[2])),
                ..Default::default()
            },
        ),
        ("keyword (rare)", keyword("王99999")),
        ("keyword (common)", keyword("李")),
        ("keyword (common, 5 chars: every wxid)", keyword("bench")),
        ("keyword (2 chars, no match)", keyword("李0")),
        ("keyword (2 chars, one match)", keyword("王0")),
    ];
    println!("\n| query (limit 50) | p50 ms | p99 ms |\n|---|---:|---:|");
    for (name, filter) in &cases {
        let mut samples = Vec::with_capacity(args.repeat);
        for _ in 0..args.repeat {
            let t = Instant::now();
            service::contacts::list(&ctx, &actor, filter, PageRequest::parse(Some(50), None)?)
                .await?;
            samples.push(t.elapsed());
        }
        let (p50, p99) = percentiles(samples);
        println!("| {name} | {p50:.1} | {p99:.1} |");
    }
    // Deep keyset pages cost the same as the first: walk 20 pages, time the last.
    let mut cursor = None;
    let mut samples = Vec::new();
    for _ in 0..20 {
        let t = Instant::now();
        let page = service::contacts::list(
            &ctx,
            &actor,
            &ContactFilter::default(),
            PageRequest::parse(Some(200), cursor.as_deref())?,
        )
        .await?;
        samples.push(t.elapsed());
        cursor = page.next_cursor;
    }
    let (p50, p99) = percentiles(samples);
    println!("| keyset walk, 20 pages of 200 | {p50:.1} | {p99:.1} |");
    if let Some(rss) = peak_rss_mib() {
        println!("\npeak RSS: {rss:.0} MiB");
    }
    Ok(())
}

async fn sync_bench(args: SyncArgs) -> anyhow::Result<()> {
    let simulator = sim::Simulator::start(sim::SimConfig {
        accounts: args.accounts,
        contacts_per_account: args.contacts,
        groups_per_account: 5,
        members_per_group: 20,
        ..Default::default()
    })?;
    let base = format!("http://127.0.0.1:{}", simulator.port());
    tokio::spawn(simulator.run());
    let ctx = fresh_context(args.database_url, "sync", "").await?;
    let admin = Actor {
        user_id: Some(1),
        permissions: Arc::new(
            ["instances:create", "instances:control"]
                .iter()
                .map(|p| (*p).to_owned())
                .collect(),
        ),
        ..Actor::system(RequestMeta::default())
    };
    println!("\n| kind | contacts | seconds | contacts/s |\n|---|---:|---:|---:|");
    for (kind, api_url, config) in [
        (
            "agent",
            format!("{base}/agent"),
            serde_json::json!({ "agent_secret": "sim-agent-secret" }),
        ),
        (
            "wecom",
            format!("{base}/cgi-bin"),
            serde_json::json!({ "corp_id": "wwsimcorp", "corp_secret": "sim-corp-secret" }),
        ),
    ] {
        let input: service::instances::manage::InstanceInput = serde_json::from_value(
            serde_json::json!({ "name": format!("bench {kind}"), "kind": kind, "api_url": api_url, "config": config }),
        )?;
        let instance = service::instances::manage::create(&ctx, &admin, input).await?;
        let run = service::sync::request(&ctx, &admin, instance.id).await?;
        let claimed = service::sync::claim_next(&ctx, "bench")
            .await?
            .ok_or_else(|| anyhow::anyhow!("sync run {} not claimable", run.id))?;
        let started = Instant::now();
        service::sync::execute(&ctx, &claimed, "bench").await?;
        let seconds = started.elapsed().as_secs_f64();
        let total = args.contacts * args.accounts;
        println!(
            "| {kind} | {total} | {seconds:.1} | {:.0} |",
            total as f64 / seconds
        );
    }
    if let Some(rss) = peak_rss_mib() {
        println!("\npeak RSS: {rss:.0} MiB");
    }
    Ok(())
}
