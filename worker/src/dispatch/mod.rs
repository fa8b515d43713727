//! Message dispatch on apalis. A feeder looks in the database for runs with receivers ready and
//! starts up to `dispatch.chains_per_run` chains of jobs on each; a job sends chunk after chunk of
//! its run (each chunk claims receivers with leases) for `dispatch.job_slice_ms`, then queues its
//! continuation, so every run gets its turn and a long run never holds a job for hours. Workers in
//! several processes share a run safely: claims never overlap, and a dead worker's receivers come
//! back when their leases expire.

pub mod chains;
pub mod queue;
mod streak;

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use apalis::prelude::*;
use service::{Context, dispatch::ChunkReport};
use tokio::sync::watch;

pub use chains::ChainMarks;
pub use queue::{DispatchJob, Queue};
use streak::FailureStreak;

/// How often a worker asks the queue for jobs when it has none.
const POLL: Duration = Duration::from_millis(100);
/// How often the feeder looks for runs that have receivers ready.
const FEED_EVERY: Duration = Duration::from_millis(250);
/// The longest wait between attempts while the queue's backend is away: dispatch resumes at
/// most this long after it returns.
const MAX_RETRY_PAUSE: Duration = Duration::from_secs(5);
/// A worker that ran this long before it failed had recovered: its failure starts a new streak.
const HEALTHY_RUN: Duration = Duration::from_secs(30);

/// Told about every chunk a job sent and how long it took from claim to recorded outcome (the
/// benchmark's latency figures).
pub type ChunkObserver = Arc<dyn Fn(&ChunkReport, Duration) + Send + Sync>;

/// What every dispatch job of this process shares.
pub struct DispatchState {
    ctx: Context,
    queue: Queue,
    marks: ChainMarks,
    worker: String,
    observer: Option<ChunkObserver>,
}

impl std::fmt::Debug for DispatchState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DispatchState")
            .field("queue", &self.queue)
            .field("worker", &self.worker)
            .finish_non_exhaustive()
    }
}

impl DispatchState {
    /// Sends chunks of the job's run until nothing is ready or the slice is used up, then queues
    /// the continuation.
    async fn slice(&self, job: &DispatchJob) -> anyhow::Result<()> {
        let budget = Duration::from_millis(self.ctx.settings.dispatch.job_slice_ms);
        let started = Instant::now();
        let mut renewed = started;
        let mut after = job.after;
        loop {
            let chunk_started = Instant::now();
            let chunk = service::dispatch::run_chunk(&self.ctx, job.run_id, &self.worker, after);
            let report = self.keeping_mark(job, chunk).await?;
            if let Some(observe) = &self.observer
                && report.claimed > 0
            {
                observe(&report, chunk_started.elapsed());
            }
            after = report.last_id;
            if !report.more {
                self.marks.end(job.run_id, job.chain).await?;
                return Ok(());
            }
            if renewed.elapsed() >= chains::MARK_TTL / 4 {
                self.marks.renew(job.run_id, job.chain).await?;
                renewed = Instant::now();
            }
            if started.elapsed() >= budget {
                self.marks.renew(job.run_id, job.chain).await?;
                let next = DispatchJob { after, ..*job };
                return self.queue.push(next).await;
            }
        }
    }

    /// Runs `work` while renewing the chain's mark, so a chunk that waits on rate slots for
    /// longer than the mark lives does not make the feeder start another chain on the run (each
    /// would claim a chunk more and only wait on the same slots).
    async fn keeping_mark<T>(&self, job: &DispatchJob, work: impl Future<Output = T>) -> T {
        let every = chains::MARK_TTL / 4;
        let mut renew = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        tokio::pin!(work);
        loop {
            tokio::select! {
                done = &mut work => return done,
                _ = renew.tick() => {
                    if let Err(e) = self.marks.renew(job.run_id, job.chain).await {
                        tracing::debug!(run.id = job.run_id, error = %e, "chain mark not renewed");
                    }
                }
            }
        }
    }

    /// Starts the missing chains of every run with receivers ready.
    async fn feed(&self) -> anyhow::Result<()> {
        let chains = self.ctx.settings.dispatch.chains_per_run;
        for run_id in service::dispatch::ready_runs(&self.ctx, 50, &Default::default()).await? {
            for chain in 0..chains {
                if self.marks.start(run_id, chain).await? {
                    let job = DispatchJob {
                        run_id,
                        chain,
                        after: 0,
                    };
                    if let Err(e) = self.queue.push(job).await {
                        self.marks.end(run_id, chain).await.ok();
                        return Err(e);
                    }
                }
            }
        }
        Ok(())
    }
}

/// The apalis job handler. A failure is logged and the job is not retried by apalis: the chain's
/// mark is dropped and the feeder starts it again once the run has work and the database answers.
async fn handle(job: DispatchJob, state: Data<Arc<DispatchState>>) -> Result<(), BoxDynError> {
    match state.slice(&job).await {
        Ok(()) => Ok(()),
        Err(e) => {
            tracing::warn!(run.id = job.run_id, chain = job.chain, error = %e, "dispatch job failed; the run resumes on the next feed");
            state.marks.end(job.run_id, job.chain).await.ok();
            Err(AbortError::new(e.to_string()).into())
        }
    }
}

/// Resolves once `shutdown` turns true.
async fn stopped(mut shutdown: watch::Receiver<bool>) -> Result<(), std::io::Error> {
    while !*shutdown.borrow() {
        if shutdown.changed().await.is_err() {
            break;
        }
    }
    Ok(())
}

/// Builds the apalis worker for one backend; a macro because the two storages are different
/// types that share no object-safe trait.
macro_rules! dispatch_worker {
    ($name:expr, $backend:expr, $state:expr) => {
        WorkerBuilder::new($name)
            .backend($backend.poll_with_interval(POLL))
            .concurrency($state.ctx.settings.dispatch.jobs_in_flight)
            .catch_panic()
            .parallelize(|job| tokio::spawn(job))
            .data($state.clone())
            .build(handle)
    };
}

/// Runs the feeder and the apalis worker until `shutdown`. A worker that stops on an error is
/// started again under a new name (apalis refuses a name it saw alive moments ago).
pub async fn run(
    ctx: Context,
    worker: String,
    shutdown: watch::Receiver<bool>,
    observer: Option<ChunkObserver>,
) {
    let queue = loop {
        match Queue::open(&ctx).await {
            Ok(queue) => break queue,
            Err(e) => {
                tracing::warn!(error = %format!("{e:#}"), "dispatch queue unavailable; retrying")
            }
        }
        if pause(&shutdown, Duration::from_secs(2)).await {
            return;
        }
    };
    let state = Arc::new(DispatchState {
        marks: ChainMarks::new(ctx.redis.clone(), &ctx.settings.redis.key_prefix),
        ctx,
        queue,
        worker,
        observer,
    });
    let feeder = tokio::spawn(feed_until(state.clone(), shutdown.clone()));
    let mut streak = FailureStreak::new("dispatch worker", Duration::from_secs(1), MAX_RETRY_PAUSE);
    for restart in 0u64.. {
        let name = format!("{}-dispatch-{restart}", state.worker);
        let started = Instant::now();
        let result = worker_run(&state, name, shutdown.clone()).await;
        if *shutdown.borrow() {
            break;
        }
        if started.elapsed() >= HEALTHY_RUN {
            streak.reset();
        }
        let wait = match result {
            Ok(()) => streak.succeeded(),
            Err(e) => streak.failed(&e),
        };
        if pause(&shutdown, wait).await {
            break;
        }
    }
    feeder.await.ok();
}

/// One run of the apalis worker, boxed where its type is concrete (rustc cannot prove the
/// future `Send` through the generic layers inside an `async fn`).
fn worker_run(
    state: &Arc<DispatchState>,
    name: String,
    shutdown: watch::Receiver<bool>,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), WorkerError>> + Send>> {
    match &state.queue {
        Queue::Sqlite(storage) => {
            Box::pin(dispatch_worker!(name, storage.clone(), state).run_until(stopped(shutdown)))
        }
        Queue::Redis(storage) => {
            Box::pin(dispatch_worker!(name, storage.clone(), state).run_until(stopped(shutdown)))
        }
    }
}

async fn feed_until(state: Arc<DispatchState>, shutdown: watch::Receiver<bool>) {
    let mut streak = FailureStreak::new("dispatch feed", FEED_EVERY, MAX_RETRY_PAUSE);
    loop {
        let pass = {
            let state = state.clone();
            tokio::spawn(async move { state.feed().await })
        };
        let wait = match pass.await {
            Ok(Ok(())) => streak.succeeded(),
            Ok(Err(e)) => streak.failed(&format!("{e:#}")),
            Err(e) => {
                tracing::error!(error = %e, "dispatch feed panicked; restarting");
                streak.failed(&e)
            }
        };
        if pause(&shutdown, wait).await {
            return;
        }
    }
}

/// Sleeps for `d`; true when shutdown was asked for meanwhile.
async fn pause(shutdown: &watch::Receiver<bool>, d: Duration) -> bool {
    let mut shutdown = shutdown.clone();
    tokio::select! {
        _ = tokio::time::sleep(d) => {}
        _ = shutdown.changed() => {}
    }
    *shutdown.borrow()
}
