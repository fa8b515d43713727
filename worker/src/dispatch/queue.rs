//! The dispatch queue, on apalis: Redis when `redis.url` is set (every worker process shares it),
//! otherwise an embedded SQLite queue file (`worker.queue_path`). A job is a hint — "run R has
//! receivers ready, continue after receiver X" — never the receivers themselves: the receivers
//! table stays the truth, so a job that is lost, repeated or delivered twice neither loses nor
//! duplicates a send.

use std::{str::FromStr, time::Duration};

use anyhow::Context as _;
use apalis::prelude::TaskSink;
use apalis_redis::RedisStorage;
use apalis_sqlite::{SqliteConnectOptions, SqlitePoolOptions, SqliteStorage};
use serde::{Deserialize, Serialize};
use service::Context;

/// The queue's name in either backend (Redis keys start with the deployment's key prefix).
const QUEUE: &str = "dispatch";
/// Workers announce themselves this often; one silent for `MISSED_HEARTBEATS` of them is dead and
/// its unfinished jobs go back to the queue (the receivers' own leases recover the sends).
const HEARTBEAT: Duration = Duration::from_secs(5);
const MISSED_HEARTBEATS: usize = 6;
/// The embedded queue's worker beats every second instead (dead after the same 30 s): apalis
/// 1.0's SQLite worker can stop polling after a few empty fetches and only wakes on its next
/// heartbeat, so a job queued then waited up to `HEARTBEAT` before a chunk ran (seen as a
/// broadcast that started sending 3–5 s late). The beat bounds that wait to a second.
const SQLITE_HEARTBEAT: Duration = Duration::from_secs(1);
const SQLITE_MISSED_HEARTBEATS: usize = 30;

/// One slice of work on one run: a job sends chunk after chunk of the run for a while, then
/// queues its continuation. Fields only ever get added, with defaults, so queued jobs written by
/// an older version still decode.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DispatchJob {
    pub run_id: i64,
    /// Which of the run's chains this job continues (see `dispatch.chains_per_run`).
    #[serde(default)]
    pub chain: u32,
    /// The highest receiver id this chain claimed so far.
    #[serde(default)]
    pub after: i64,
}

/// Where dispatch jobs are pushed and fetched.
#[derive(Clone)]
pub enum Queue {
    Sqlite(SqliteStorage<DispatchJob>),
    Redis(RedisStorage<DispatchJob>),
}

impl std::fmt::Debug for Queue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Sqlite(_) => "Queue::Sqlite",
            Self::Redis(_) => "Queue::Redis",
        })
    }
}

impl Queue {
    /// Opens the queue the settings call for, creating the embedded queue file if needed.
    pub async fn open(ctx: &Context) -> anyhow::Result<Self> {
        match &ctx.redis {
            Some(redis) => {
                let config = apalis_redis::Config::default()
                    .queue(format!("{}{QUEUE}", ctx.settings.redis.key_prefix))
                    .heartbeat_interval(HEARTBEAT)
                    .missed_heartbeats(MISSED_HEARTBEATS);
                Ok(Self::Redis(
                    RedisStorage::new(redis.clone()).with_config(config),
                ))
            }
            None => Self::open_sqlite(&ctx.settings.worker.queue_path).await,
        }
    }

    async fn open_sqlite(path: &str) -> anyhow::Result<Self> {
        if let Some(dir) = std::path::Path::new(path).parent()
            && !dir.as_os_str().is_empty()
        {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("creating the directory of `worker.queue_path` {path}"))?;
        }
        let options = SqliteConnectOptions::from_str(&format!("sqlite://{path}"))
            .context("parsing `worker.queue_path`")?
            .create_if_missing(true)
            .busy_timeout(Duration::from_secs(10));
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await
            .with_context(|| format!("opening the dispatch queue {path}"))?;
        SqliteStorage::setup(&pool)
            .await
            .with_context(|| format!("preparing the dispatch queue {path}"))?;
        let config = apalis_sqlite::Config::default()
            .queue(QUEUE)
            .heartbeat_interval(SQLITE_HEARTBEAT)
            .missed_heartbeats(SQLITE_MISSED_HEARTBEATS);
        Ok(Self::Sqlite(SqliteStorage::new(&pool).with_config(config)))
    }

    pub async fn push(&self, job: DispatchJob) -> anyhow::Result<()> {
        match self.clone() {
            Self::Sqlite(mut storage) => storage
                .push(job)
                .await
                .map_err(|e| anyhow::anyhow!("queueing a dispatch job: {e}")),
            Self::Redis(mut storage) => storage
                .push(job)
                .await
                .map_err(|e| anyhow::anyhow!("queueing a dispatch job: {e}")),
        }
    }
}
