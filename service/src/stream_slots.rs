//! Open server-sent-event streams per user, capped: each stream holds a connection and polls the
//! database every second, so one user — or one stolen token — must not be able to open
//! thousands. With Redis the cap holds across every `wework api` process: each open stream is
//! a member of a per-user sorted set scored by its lease's end, renewed while it runs, so the
//! slots of a process that died come back when their leases run out. Without Redis (or while it
//! is unreachable) each process applies the cap on its own.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, PoisonError},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

/// Streams one user may hold open at once.
pub const MAX_STREAMS_PER_USER: usize = 8;
/// How long a stream's slot outlives its last renewal (a process that died gives its slots
/// back after this).
pub const LEASE: Duration = Duration::from_secs(30);

/// Drops expired leases, then books `member` until `ARGV[2]` unless the user holds the cap.
const TAKE: &str = r"
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then return 0 end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[4])
redis.call('PEXPIRE', KEYS[1], ARGV[5])
return 1
";

#[derive(Clone)]
struct Shared {
    redis: redis::aio::ConnectionManager,
    prefix: String,
}

#[derive(Clone, Default)]
pub struct StreamSlots {
    local: Arc<Mutex<HashMap<i64, usize>>>,
    shared: Option<Shared>,
}

impl std::fmt::Debug for StreamSlots {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamSlots")
            .field("shared", &self.shared.is_some())
            .finish_non_exhaustive()
    }
}

/// One open stream; the slot is given back when the stream is dropped (finished or the client
/// went away).
#[derive(Debug)]
pub struct StreamSlot {
    slots: StreamSlots,
    user_id: i64,
    /// The member booked in Redis, when the cap is shared.
    member: Option<String>,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

impl StreamSlots {
    /// Slots shared through `redis` when given, kept in this process otherwise.
    pub fn new(redis: Option<redis::aio::ConnectionManager>, key_prefix: &str) -> Self {
        Self {
            local: Arc::default(),
            shared: redis.map(|redis| Shared {
                redis,
                prefix: format!("{key_prefix}streams:"),
            }),
        }
    }

    /// A slot for `user_id`, or `None` when they already hold the maximum.
    pub async fn take(&self, user_id: i64) -> Option<StreamSlot> {
        let mut slot = self.take_local(user_id)?;
        if let Some(shared) = &self.shared {
            let member = uuid::Uuid::new_v4().to_string();
            let now = now_ms();
            let booked: redis::RedisResult<i64> = redis::Script::new(TAKE)
                .key(format!("{}{user_id}", shared.prefix))
                .arg(now)
                .arg(now + lease_ms())
                .arg(MAX_STREAMS_PER_USER)
                .arg(&member)
                .arg(lease_ms())
                .invoke_async(&mut shared.redis.clone())
                .await;
            match booked {
                Ok(1) => slot.member = Some(member),
                // Full across the processes: the local slot is given back as `slot` drops.
                Ok(_) => return None,
                Err(e) => {
                    tracing::warn!(error = %e, "redis unavailable for stream slots; capping in-process");
                }
            }
        }
        Some(slot)
    }

    fn take_local(&self, user_id: i64) -> Option<StreamSlot> {
        let mut open = self.local.lock().unwrap_or_else(PoisonError::into_inner);
        let count = open.entry(user_id).or_default();
        if *count >= MAX_STREAMS_PER_USER {
            return None;
        }
        *count += 1;
        Some(StreamSlot {
            slots: self.clone(),
            user_id,
            member: None,
        })
    }
}

fn lease_ms() -> u64 {
    u64::try_from(LEASE.as_millis()).unwrap_or(u64::MAX)
}

impl StreamSlot {
    /// Extends the lease of a shared slot; call it well within [`LEASE`] while the stream runs.
    pub async fn renew(&self) {
        let (Some(shared), Some(member)) = (&self.slots.shared, &self.member) else {
            return;
        };
        let renewed: redis::RedisResult<i64> = redis::cmd("ZADD")
            .arg(format!("{}{}", shared.prefix, self.user_id))
            .arg("XX")
            .arg(now_ms() + lease_ms())
            .arg(member)
            .query_async(&mut shared.redis.clone())
            .await;
        if let Err(e) = renewed {
            tracing::debug!(error = %e, "stream slot lease not renewed");
        }
    }
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        let mut open = self
            .slots
            .local
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = open.get_mut(&self.user_id) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                open.remove(&self.user_id);
            }
        }
        drop(open);
        if let (Some(shared), Some(member)) = (self.slots.shared.clone(), self.member.take()) {
            let key = format!("{}{}", shared.prefix, self.user_id);
            // Given back off the dropping thread; if this never runs, the lease runs out.
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                runtime.spawn(async move {
                    let mut redis = shared.redis;
                    let removed: redis::RedisResult<i64> =
                        redis::cmd("ZREM").arg(key).arg(member).query_async(&mut redis).await;
                    if let Err(e) = removed {
                        tracing::debug!(error = %e, "stream slot not given back; its lease will run out");
                    }
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_user_holds_at_most_the_cap_and_slots_come_back() {
        let slots = StreamSlots::default();
        let mut held = Vec::new();
        for _ in 0..MAX_STREAMS_PER_USER {
            held.push(slots.take(1).await.expect("under the cap"));
        }
        assert!(slots.take(1).await.is_none());
        assert!(
            slots.take(2).await.is_some(),
            "another user is not affected"
        );
        drop(held);
        assert!(slots.take(1).await.is_some());
    }
}
