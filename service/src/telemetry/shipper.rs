//! Ships records to a remote store in batches, off every request's and send's path: `record`
//! never waits, a background task batches by size and time, a batch the store refuses or cannot
//! take goes to the spool, and the spool is replayed (oldest first, with back-off) before any new
//! batch, so the store receives everything, in order, once it is back. Re-sending is safe:
//! metric points overwrite themselves and log documents carry their own ids.

use std::{sync::Arc, time::Duration};

use tokio::sync::{mpsc, oneshot};

use super::spool::Spool;

/// Where batches go: InfluxDB, Elasticsearch, ...
#[async_trait::async_trait]
pub trait Target: Send + Sync + 'static {
    type Item: Send + 'static;
    /// For logs and errors; never includes credentials.
    fn name(&self) -> &'static str;
    fn encode(&self, items: &[Self::Item]) -> Vec<u8>;
    async fn send(&self, body: Vec<u8>) -> anyhow::Result<()>;
}

#[derive(Debug, Clone, Copy)]
pub struct ShipperOptions {
    pub batch_size: usize,
    pub flush_every: Duration,
    /// Records waiting in memory before `record` starts spilling them straight to the spool.
    pub buffer: usize,
    pub send_timeout: Duration,
}

enum Message<I> {
    Item(I),
    Flush(oneshot::Sender<bool>),
}

/// The cheap, cloneable handle producers use.
pub struct Shipper<I> {
    tx: mpsc::Sender<Message<I>>,
}

impl<I> Clone for Shipper<I> {
    fn clone(&self) -> Self {
        Self {
            tx: self.tx.clone(),
        }
    }
}

impl<I> std::fmt::Debug for Shipper<I> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shipper").finish_non_exhaustive()
    }
}

impl<I: Send + 'static> Shipper<I> {
    /// Starts the background task (needs a Tokio runtime).
    pub fn start<T: Target<Item = I>>(target: T, spool: Spool, options: ShipperOptions) -> Self {
        let (tx, rx) = mpsc::channel(options.buffer.max(1));
        let target = Arc::new(target);
        tokio::spawn(run(target, Arc::new(spool), rx, options));
        Self { tx }
    }

    /// Queues a record; never waits. A full buffer (the task cannot keep up even by spooling)
    /// drops the record with a warning.
    pub fn record(&self, item: I) {
        if let Err(mpsc::error::TrySendError::Full(_)) = self.tx.try_send(Message::Item(item)) {
            tracing::warn!("telemetry buffer full; a record was dropped");
        }
    }

    /// Sends everything queued so far and replays the spool; true when the store took it all.
    pub async fn flush(&self) -> bool {
        let (ack, done) = oneshot::channel();
        if self.tx.send(Message::Flush(ack)).await.is_err() {
            return false;
        }
        done.await.unwrap_or(false)
    }
}

struct Worker<T: Target> {
    target: Arc<T>,
    spool: Arc<Spool>,
    options: ShipperOptions,
    /// While the store is down: when to try the spool again, and the current back-off.
    retry_at: Option<tokio::time::Instant>,
    backoff: Duration,
}

const MAX_BACKOFF: Duration = Duration::from_secs(10);

async fn run<T: Target>(
    target: Arc<T>,
    spool: Arc<Spool>,
    mut rx: mpsc::Receiver<Message<T::Item>>,
    options: ShipperOptions,
) {
    let mut worker = Worker {
        target,
        spool,
        options,
        retry_at: None,
        backoff: Duration::from_millis(500),
    };
    let mut batch: Vec<T::Item> = Vec::with_capacity(options.batch_size);
    let mut tick = tokio::time::interval(options.flush_every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            message = rx.recv() => match message {
                Some(Message::Item(item)) => {
                    batch.push(item);
                    if batch.len() >= options.batch_size {
                        worker.ship(std::mem::take(&mut batch)).await;
                    }
                }
                Some(Message::Flush(ack)) => {
                    worker.ship(std::mem::take(&mut batch)).await;
                    worker.retry_at = None;
                    let drained = worker.replay().await;
                    ack.send(drained).ok();
                }
                None => {
                    worker.ship(std::mem::take(&mut batch)).await;
                    return;
                }
            },
            _ = tick.tick() => {
                worker.ship(std::mem::take(&mut batch)).await;
                worker.replay().await;
            }
        }
    }
}

impl<T: Target> Worker<T> {
    /// Sends a batch, or spools it when the store is down or older batches wait.
    async fn ship(&mut self, batch: Vec<T::Item>) {
        if batch.is_empty() {
            return;
        }
        let body = self.target.encode(&batch);
        if self.retry_at.is_none() && self.spool.is_empty() && self.send(body.clone()).await {
            return;
        }
        if let Err(e) = self.spool.push(&body) {
            tracing::error!(target_store = self.target.name(), error = %e, "could not spool a batch; it is lost");
        }
    }

    /// Replays spooled batches oldest first; true when the spool is empty afterwards.
    async fn replay(&mut self) -> bool {
        if let Some(at) = self.retry_at
            && tokio::time::Instant::now() < at
        {
            return false;
        }
        for batch in self.spool.pending() {
            let Ok(body) = self.spool.read(&batch) else {
                self.spool.remove(&batch);
                continue;
            };
            if !self.send(body).await {
                return false;
            }
            self.spool.remove(&batch);
        }
        true
    }

    async fn send(&mut self, body: Vec<u8>) -> bool {
        let result = tokio::time::timeout(self.options.send_timeout, self.target.send(body)).await;
        let error = match result {
            Ok(Ok(())) => {
                if self.retry_at.take().is_some() {
                    tracing::info!(
                        target_store = self.target.name(),
                        "telemetry store reachable again; replaying the spool"
                    );
                }
                self.backoff = Duration::from_millis(500);
                return true;
            }
            Ok(Err(e)) => crate::net::redact::redact_urls_in(&format!("{e:#}")),
            Err(_) => "timed out".to_owned(),
        };
        if self.retry_at.is_none() {
            tracing::warn!(target_store = self.target.name(), error = %error, "telemetry store unavailable; spooling");
        }
        self.retry_at = Some(tokio::time::Instant::now() + self.backoff);
        self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
        false
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    /// A store that can be switched off, remembering what it took.
    #[derive(Default)]
    struct Flaky {
        up: Mutex<bool>,
        got: Mutex<Vec<String>>,
    }

    struct FlakyTarget(Arc<Flaky>);

    #[async_trait::async_trait]
    impl Target for FlakyTarget {
        type Item = u32;
        fn name(&self) -> &'static str {
            "flaky"
        }
        fn encode(&self, items: &[u32]) -> Vec<u8> {
            items
                .iter()
                .map(|i| format!("{i}\n"))
                .collect::<String>()
                .into_bytes()
        }
        async fn send(&self, body: Vec<u8>) -> anyhow::Result<()> {
            anyhow::ensure!(
                *self.0.up.lock().map_err(|_| anyhow::anyhow!("poisoned"))?,
                "down"
            );
            let text = String::from_utf8(body)?;
            self.0
                .got
                .lock()
                .map_err(|_| anyhow::anyhow!("poisoned"))?
                .extend(text.lines().map(str::to_owned));
            Ok(())
        }
    }

    #[tokio::test]
    async fn records_survive_an_outage_and_arrive_in_order() {
        let store = Arc::new(Flaky::default());
        let dir =
            std::env::temp_dir().join(format!("wework-ship-{}", uuid::Uuid::new_v4().simple()));
        let spool = Spool::open(&dir, 1 << 20).unwrap_or_else(|e| panic!("{e}"));
        let shipper = Shipper::start(
            FlakyTarget(store.clone()),
            spool,
            ShipperOptions {
                batch_size: 3,
                flush_every: Duration::from_millis(20),
                buffer: 100,
                send_timeout: Duration::from_secs(1),
            },
        );
        for i in 0..10 {
            shipper.record(i);
        }
        assert!(!shipper.flush().await, "the store is down");
        assert!(store.got.lock().map(|g| g.is_empty()).unwrap_or(false));
        *store
            .up
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = true;
        for i in 10..12 {
            shipper.record(i);
        }
        assert!(shipper.flush().await);
        let got = store.got.lock().map(|g| g.clone()).unwrap_or_default();
        let want: Vec<String> = (0..12).map(|i| i.to_string()).collect();
        assert_eq!(got, want);
        assert!(Spool::open(&dir, 1).map(|s| s.is_empty()).unwrap_or(false));
    }
}
