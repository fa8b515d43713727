//! `wework bench schedule`: how late scheduled tasks and cron firings start. One-shot tasks due at
//! whole seconds over a spread, and recurring tasks firing every few seconds, run by the whole
//! worker (scheduler, expansion, dispatch, as a `wework worker` process runs them) against a
//! simulator; the bench watches the runs appear and reports how long after its due time each
//! started, and that each firing started once.

use std::{
    collections::BTreeMap,
    time::{Duration, Instant},
};

use chrono::{DateTime, DurationRound, NaiveDateTime, TimeDelta, Utc};
use clap::Args as ClapArgs;
use entity::message_task_runs;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder};

use super::bench::{fresh_context, percentiles};
use super::bench_broadcast::{SimProcess, operator, queue_setting, synced_instance};

#[derive(Debug, ClapArgs)]
pub struct ScheduleArgs {
    /// One-shot tasks, each due at a whole second within --spread seconds.
    #[arg(long, default_value_t = 100)]
    tasks: usize,
    /// Recurring tasks firing every --cron-every seconds while the bench runs.
    #[arg(long, default_value_t = 10)]
    cron_tasks: usize,
    #[arg(long, default_value_t = 5)]
    cron_every: u32,
    /// Seconds over which the one-shot tasks fall due (and the cron tasks keep firing).
    #[arg(long, default_value_t = 30)]
    spread: u32,
    /// Database to use; must be empty. Default: a fresh SQLite file in the temp directory.
    #[arg(long)]
    database_url: Option<String>,
    #[arg(long)]
    redis_url: Option<String>,
}

/// A firing the bench saw start: its task, when it was due, how late it appeared.
struct Start {
    task_id: i64,
    due: NaiveDateTime,
    late: Duration,
}

pub async fn schedule_bench(args: ScheduleArgs) -> anyhow::Result<()> {
    const CONTACTS: usize = 5;
    let sim = SimProcess::start(1, CONTACTS, 0).await?;
    // Rate limits off: runs end at once, so a cron firing never waits for its previous run and
    // what is measured is the scheduler.
    let mut extra = format!(
        "[dispatch]\nrate_limits = false\n{}",
        queue_setting("schedule")
    );
    if let Some(redis) = &args.redis_url {
        extra.push_str(&format!("[redis]\nurl = \"{redis}\"\n"));
    }
    let ctx = fresh_context(args.database_url.clone(), "schedule", &extra).await?;
    let actor = operator();
    let instance = synced_instance(&ctx, &actor, &sim).await?;

    // Due times start far enough ahead that every task exists before the first is due.
    let second = TimeDelta::seconds(1);
    let first_due = Utc::now().duration_trunc(second)? + TimeDelta::seconds(10);
    let spread = i64::from(args.spread.max(1));
    let mut one_shot = BTreeMap::new();
    for i in 0..args.tasks {
        let due = first_due + TimeDelta::seconds(i as i64 % spread);
        let task = service::tasks::create(
            &ctx,
            &actor,
            task_input(i, instance, serde_json::json!({ "scheduled_time": due }))?,
        )
        .await?;
        one_shot.insert(task.id, due.naive_utc());
    }
    anyhow::ensure!(
        Utc::now() < first_due,
        "creating {} tasks took past the first due time; use fewer",
        args.tasks
    );
    let cron = format!("*/{} * * * * *", args.cron_every.max(1));
    for i in 0..args.cron_tasks {
        service::tasks::create(
            &ctx,
            &actor,
            task_input(i, instance, serde_json::json!({ "cron": cron }))?,
        )
        .await?;
    }
    println!(
        "{} one-shot tasks due from {first_due} over {spread} s, {} recurring every {} s; {CONTACTS} receivers each",
        args.tasks, args.cron_tasks, args.cron_every
    );

    let (stop, stopped) = tokio::sync::watch::channel(false);
    let worker = tokio::spawn(worker::run(ctx.clone(), stopped));
    let until = first_due + TimeDelta::seconds(spread + 2);
    let starts = watch_runs(&ctx, until, |seen| {
        one_shot
            .keys()
            .all(|id| seen.iter().any(|s| s.task_id == *id))
    })
    .await?;
    stop.send(true).ok();
    let _ = tokio::time::timeout(Duration::from_secs(10), worker).await;

    let mut firings: BTreeMap<(i64, NaiveDateTime), usize> = BTreeMap::new();
    for start in &starts {
        *firings.entry((start.task_id, start.due)).or_default() += 1;
    }
    let twice = firings.values().filter(|n| **n > 1).count();
    anyhow::ensure!(twice == 0, "{twice} firings started more than once");
    let missing = one_shot
        .iter()
        .filter(|(id, due)| !firings.contains_key(&(**id, **due)))
        .count();
    anyhow::ensure!(missing == 0, "{missing} one-shot tasks did not start");
    let (one, recurring): (Vec<&Start>, Vec<&Start>) = starts
        .iter()
        .partition(|s| one_shot.contains_key(&s.task_id));
    println!("\n| starts | count | p50 ms | p99 ms | max ms |\n|---|---:|---:|---:|---:|");
    for (label, group) in [
        ("one-shot", one),
        ("cron firings", recurring),
        ("all", starts.iter().collect()),
    ] {
        let lates: Vec<Duration> = group.iter().map(|s| s.late).collect();
        let max = lates.iter().max().copied().unwrap_or_default();
        let (p50, p99) = percentiles(lates.clone());
        println!(
            "| {label} | {} | {p50:.0} | {p99:.0} | {:.0} |",
            lates.len(),
            max.as_secs_f64() * 1000.0
        );
    }
    Ok(())
}

fn task_input(
    i: usize,
    instance: i64,
    when: serde_json::Value,
) -> anyhow::Result<service::tasks::TaskInput> {
    let mut input = serde_json::json!({
        "name": format!("bench schedule {i}"), "task_type": "broadcast",
        "content": format!("第 {i} 条定时消息"),
        "audience": { "filter": { "instance_ids": [instance] } }
    });
    if let (Some(input), Some(when)) = (input.as_object_mut(), when.as_object()) {
        input.extend(when.clone());
    }
    Ok(serde_json::from_value(input)?)
}

/// Polls for new runs every 10 ms until `done` holds of what was seen and `until` has passed;
/// each start is timed against the moment the bench first saw its run.
async fn watch_runs(
    ctx: &service::Context,
    until: DateTime<Utc>,
    done: impl Fn(&[Start]) -> bool,
) -> anyhow::Result<Vec<Start>> {
    let mut starts: Vec<Start> = Vec::new();
    let mut after = 0;
    let deadline = Instant::now() + Duration::from_secs(600);
    while !(Utc::now() > until && done(&starts)) {
        anyhow::ensure!(
            Instant::now() < deadline,
            "tasks still not started after 10 minutes"
        );
        let runs = message_task_runs::Entity::find()
            .filter(message_task_runs::Column::Id.gt(after))
            .order_by_asc(message_task_runs::Column::Id)
            .all(&ctx.db)
            .await?;
        let seen = Utc::now();
        for run in runs {
            after = run.id;
            starts.push(Start {
                task_id: run.task_id,
                due: run.scheduled_for,
                late: (seen - run.scheduled_for.and_utc())
                    .to_std()
                    .unwrap_or_default(),
            });
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Ok(starts)
}
