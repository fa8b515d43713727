//! Per-IP throttling of failed logins: a fixed one-minute window, counted in Redis when configured
//! (so every API process sees the same count) and in-process otherwise or while Redis is down.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use redis::AsyncCommands;

const WINDOW_SECS: i64 = 60;

#[derive(Clone)]
pub struct FailureThrottle {
    limit: u32,
    local: Arc<Mutex<HashMap<String, (i64, u32)>>>,
    redis: Option<redis::aio::ConnectionManager>,
    prefix: String,
}

impl std::fmt::Debug for FailureThrottle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FailureThrottle")
            .field("limit", &self.limit)
            .finish_non_exhaustive()
    }
}

impl FailureThrottle {
    pub fn new(limit: u32, redis: Option<redis::aio::ConnectionManager>, prefix: String) -> Self {
        Self {
            limit,
            local: Arc::default(),
            redis,
            prefix,
        }
    }

    /// Seconds until `key` may try again, when it has used up this window.
    pub async fn retry_after(&self, key: &str, now_unix: i64) -> Option<u64> {
        let window = now_unix.div_euclid(WINDOW_SECS);
        let count = match self.redis_count(key, window).await {
            Some(count) => count,
            None => self.local_count(key, window),
        };
        (count >= self.limit)
            .then(|| u64::try_from((window + 1) * WINDOW_SECS - now_unix).unwrap_or(1))
    }

    pub async fn record_failure(&self, key: &str, now_unix: i64) {
        let window = now_unix.div_euclid(WINDOW_SECS);
        if let Some(mut redis) = self.redis.clone() {
            let redis_key = self.redis_key(key, window);
            let result: redis::RedisResult<()> = redis::pipe()
                .incr(&redis_key, 1)
                .expire(&redis_key, WINDOW_SECS * 2)
                .query_async(&mut redis)
                .await;
            match result {
                Ok(()) => return,
                Err(e) => {
                    tracing::warn!(error = %e, "redis unavailable for login throttling; counting in-process")
                }
            }
        }
        let Ok(mut map) = self.local.lock() else {
            return;
        };
        if map.len() > 100_000 {
            map.retain(|_, (w, _)| *w >= window);
        }
        let entry = map.entry(key.to_owned()).or_insert((window, 0));
        if entry.0 != window {
            *entry = (window, 0);
        }
        entry.1 += 1;
    }

    fn local_count(&self, key: &str, window: i64) -> u32 {
        self.local
            .lock()
            .ok()
            .and_then(|map| map.get(key).filter(|(w, _)| *w == window).map(|(_, c)| *c))
            .unwrap_or(0)
    }

    async fn redis_count(&self, key: &str, window: i64) -> Option<u32> {
        let mut redis = self.redis.clone()?;
        let count: redis::RedisResult<Option<u32>> = redis.get(self.redis_key(key, window)).await;
        match count {
            Ok(c) => Some(c.unwrap_or(0).max(self.local_count(key, window))),
            Err(e) => {
                tracing::warn!(error = %e, "redis unavailable for login throttling; counting in-process");
                None
            }
        }
    }

    fn redis_key(&self, key: &str, window: i64) -> String {
        format!("{}{key}:{window}", self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn blocks_after_limit_until_the_window_ends() {
        let throttle = FailureThrottle::new(3, None, String::new());
        let t = 1_700_000_000 - 1_700_000_000 % 60 + 10;
        for _ in 0..3 {
            assert_eq!(throttle.retry_after("1.2.3.4", t).await, None);
            throttle.record_failure("1.2.3.4", t).await;
        }
        assert_eq!(throttle.retry_after("1.2.3.4", t).await, Some(50));
        assert_eq!(throttle.retry_after("5.6.7.8", t).await, None);
        assert_eq!(
            throttle.retry_after("1.2.3.4", t + 50).await,
            None,
            "next window"
        );
    }
}
