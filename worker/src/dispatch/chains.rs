//! Which runs already have a chain of dispatch jobs, so the feeder starts at most
//! `dispatch.chains_per_run` of them per run. A mark lives in Redis when it is configured (every
//! worker process sees it) and in-process otherwise; it expires on its own, so the chains of a
//! worker that died are started again.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

/// How long a chain counts as alive without news; a running job renews it every quarter of
/// that. Short, because a mark outliving a killed worker holds its run back; one that expires
/// under a slow chunk only lets a second chain share the run, which is safe.
pub const MARK_TTL: Duration = Duration::from_secs(10);

#[derive(Clone)]
pub struct ChainMarks {
    local: Arc<Mutex<HashMap<(i64, u32), Instant>>>,
    redis: Option<redis::aio::ConnectionManager>,
    prefix: String,
}

impl std::fmt::Debug for ChainMarks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChainMarks")
            .field("redis", &self.redis.is_some())
            .finish_non_exhaustive()
    }
}

impl ChainMarks {
    pub fn new(redis: Option<redis::aio::ConnectionManager>, key_prefix: &str) -> Self {
        Self {
            local: Arc::default(),
            redis,
            prefix: format!("{key_prefix}dispatch-chain:"),
        }
    }

    fn key(&self, run: i64, chain: u32) -> String {
        format!("{}{run}:{chain}", self.prefix)
    }

    /// Marks the chain as started; false when it already runs (here or in another process).
    pub async fn start(&self, run: i64, chain: u32) -> anyhow::Result<bool> {
        let Some(mut redis) = self.redis.clone() else {
            let mut map = self.lock();
            let now = Instant::now();
            map.retain(|_, seen| now.duration_since(*seen) < MARK_TTL);
            if map.contains_key(&(run, chain)) {
                return Ok(false);
            }
            map.insert((run, chain), now);
            return Ok(true);
        };
        let set: Option<String> = redis::cmd("SET")
            .arg(self.key(run, chain))
            .arg(1)
            .arg("NX")
            .arg("PX")
            .arg(millis(MARK_TTL))
            .query_async(&mut redis)
            .await?;
        Ok(set.is_some())
    }

    /// The chain goes on: its mark lives another `MARK_TTL`.
    pub async fn renew(&self, run: i64, chain: u32) -> anyhow::Result<()> {
        let Some(mut redis) = self.redis.clone() else {
            self.lock().insert((run, chain), Instant::now());
            return Ok(());
        };
        let _: () = redis::cmd("SET")
            .arg(self.key(run, chain))
            .arg(1)
            .arg("PX")
            .arg(millis(MARK_TTL))
            .query_async(&mut redis)
            .await?;
        Ok(())
    }

    /// The chain ended (its run has nothing ready): the feeder may start it again later.
    pub async fn end(&self, run: i64, chain: u32) -> anyhow::Result<()> {
        let Some(mut redis) = self.redis.clone() else {
            self.lock().remove(&(run, chain));
            return Ok(());
        };
        let _: () = redis::cmd("DEL")
            .arg(self.key(run, chain))
            .query_async(&mut redis)
            .await?;
        Ok(())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(i64, u32), Instant>> {
        self.local
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_chain_starts_once_until_it_ends() {
        let marks = ChainMarks::new(None, "t:");
        assert!(marks.start(7, 0).await.unwrap_or(false));
        assert!(!marks.start(7, 0).await.unwrap_or(true));
        assert!(marks.start(7, 1).await.unwrap_or(false));
        marks.renew(7, 0).await.ok();
        assert!(!marks.start(7, 0).await.unwrap_or(true));
        marks.end(7, 0).await.ok();
        assert!(marks.start(7, 0).await.unwrap_or(false));
    }
}
