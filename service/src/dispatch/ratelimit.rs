//! GCRA rate limiting (the generic cell rate algorithm), per key: an account, an instance, a
//! WeCom recipient. Reservation style: `reserve` books the next slot and says how long to wait
//! for it, so concurrent senders queue up fairly instead of spinning. State lives in Redis when
//! configured (one atomic script, the server's clock, shared by every worker) and in-process
//! otherwise or while Redis is unreachable.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

/// A limit: `count` events per `period`, allowing bursts of `burst` events.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    pub count: u32,
    pub period: Duration,
    pub burst: u32,
}

impl Rate {
    pub fn per_minute(count: u32) -> Self {
        Self {
            count: count.max(1),
            period: Duration::from_secs(60),
            burst: 1,
        }
    }

    pub fn per_hour(count: u32) -> Self {
        Self {
            count: count.max(1),
            period: Duration::from_secs(3600),
            burst: 1,
        }
    }

    pub fn with_burst(mut self, burst: u32) -> Self {
        self.burst = burst.max(1);
        self
    }

    /// Seconds between events.
    fn interval(&self) -> f64 {
        self.period.as_secs_f64() / f64::from(self.count)
    }

    /// How far ahead of now the schedule may run before callers must wait.
    fn tolerance(&self) -> f64 {
        self.interval() * f64::from(self.burst - 1)
    }
}

/// The pure algorithm: given the stored theoretical arrival time, returns (wait, new tat).
pub fn gcra(tat: Option<f64>, now: f64, rate: Rate) -> (f64, f64) {
    let tat = tat.unwrap_or(now).max(now);
    let earliest = tat - rate.tolerance();
    let wait = (earliest - now).max(0.0);
    (wait, tat + rate.interval())
}

/// Lua: the same algorithm atomically in Redis, with Redis's clock. Returns the wait in
/// microseconds.
const SCRIPT: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local wait = tat - tolerance - now
if wait < 0 then wait = 0 end
local new_tat = tat + interval
redis.call('SET', KEYS[1], tostring(new_tat), 'PX', math.ceil((new_tat - now) * 1000) + 1000)
return math.floor(wait * 1000000)
";

/// Lua: pushes a key's schedule at least `ARGV[1]` seconds into the future (a penalty after the
/// remote side said "too fast").
const PENALTY: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local until_ = now + tonumber(ARGV[1])
local tat = tonumber(redis.call('GET', KEYS[1]) or 0)
if tat < until_ then
  redis.call('SET', KEYS[1], tostring(until_), 'PX', math.ceil(tonumber(ARGV[1]) * 1000) + 60000)
end
return 1
";

#[derive(Clone)]
pub struct RateLimiter {
    local: Arc<Mutex<HashMap<String, f64>>>,
    redis: Option<redis::aio::ConnectionManager>,
    prefix: String,
}

impl std::fmt::Debug for RateLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimiter")
            .field("redis", &self.redis.is_some())
            .finish_non_exhaustive()
    }
}

fn now_secs() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

impl RateLimiter {
    pub fn new(redis: Option<redis::aio::ConnectionManager>, prefix: &str) -> Self {
        Self {
            local: Arc::default(),
            redis,
            prefix: format!("{prefix}rate:"),
        }
    }

    /// Books the next slot of `key` and returns how long to wait before using it.
    pub async fn reserve(&self, key: &str, rate: Rate) -> Duration {
        if let Some(mut redis) = self.redis.clone() {
            let result: redis::RedisResult<i64> = redis::Script::new(SCRIPT)
                .key(format!("{}{key}", self.prefix))
                .arg(rate.interval())
                .arg(rate.tolerance())
                .invoke_async(&mut redis)
                .await;
            match result {
                Ok(micros) => return Duration::from_micros(u64::try_from(micros).unwrap_or(0)),
                Err(e) => {
                    tracing::warn!(error = %e, "redis unavailable for rate limiting; limiting in-process")
                }
            }
        }
        self.reserve_local(key, rate, now_secs())
    }

    fn reserve_local(&self, key: &str, rate: Rate, now: f64) -> Duration {
        let Ok(mut map) = self.local.lock() else {
            return Duration::ZERO;
        };
        if map.len() > 100_000 {
            map.retain(|_, tat| *tat > now);
        }
        let (wait, tat) = gcra(map.get(key).copied(), now, rate);
        map.insert(key.to_owned(), tat);
        Duration::from_secs_f64(wait)
    }

    /// Blocks `key` for `duration` (e.g. after WeCom 45009 or an agent's 429 Retry-After).
    pub async fn penalize(&self, key: &str, duration: Duration) {
        if let Some(mut redis) = self.redis.clone() {
            let result: redis::RedisResult<i64> = redis::Script::new(PENALTY)
                .key(format!("{}{key}", self.prefix))
                .arg(duration.as_secs_f64())
                .invoke_async(&mut redis)
                .await;
            if result.is_ok() {
                return;
            }
        }
        if let Ok(mut map) = self.local.lock() {
            let until = now_secs() + duration.as_secs_f64();
            let tat = map.entry(key.to_owned()).or_insert(until);
            if *tat < until {
                *tat = until;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spaces_events_by_the_interval() {
        let rate = Rate::per_minute(60);
        let (w1, tat) = gcra(None, 1000.0, rate);
        let (w2, tat) = gcra(Some(tat), 1000.0, rate);
        let (w3, _) = gcra(Some(tat), 1000.0, rate);
        assert_eq!((w1, w2, w3), (0.0, 1.0, 2.0), "60 per minute: one a second");
    }

    #[test]
    fn bursts_are_allowed_up_to_the_tolerance() {
        let rate = Rate::per_minute(60).with_burst(3);
        let mut tat = None;
        let mut waits = Vec::new();
        for _ in 0..5 {
            let (w, t) = gcra(tat, 1000.0, rate);
            waits.push(w);
            tat = Some(t);
        }
        assert_eq!(waits, vec![0.0, 0.0, 0.0, 1.0, 2.0]);
    }

    #[test]
    fn idle_time_is_not_banked_beyond_the_burst() {
        let rate = Rate::per_minute(60);
        let (_, tat) = gcra(None, 1000.0, rate);
        let (wait, _) = gcra(Some(tat), 5000.0, rate);
        assert_eq!(wait, 0.0);
        let (_, tat2) = gcra(Some(tat), 5000.0, rate);
        assert_eq!(tat2, 5001.0);
    }

    #[tokio::test]
    async fn penalty_delays_the_next_reservation() {
        let limiter = RateLimiter::new(None, "");
        limiter.penalize("acct", Duration::from_secs(30)).await;
        let wait = limiter.reserve("acct", Rate::per_minute(600)).await;
        assert!(wait >= Duration::from_secs(29), "{wait:?}");
    }
}
