//! GCRA rate limiting (the generic cell rate algorithm), per key: an account, an instance, a
//! WeCom recipient. A send books one slot on every key it must pass, atomically and only when
//! the slot is near: `acquire` either books the slots and says how long to wait for them, or —
//! when the slot is further away than the caller will hold its work — books nothing and says
//! when to come back. Capacity is never reserved for a send that does not happen, so however
//! large the backlog, a key's schedule runs at most `max_wait` plus one interval ahead of the
//! clock, and a crash can strand at most that much. State lives in Redis when configured (one
//! atomic script, the server's clock, shared by every worker) and in-process otherwise or while
//! Redis is unreachable.

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
    pub fn interval(&self) -> f64 {
        self.period.as_secs_f64() / f64::from(self.count)
    }

    /// How far ahead of now the schedule may run before callers must wait.
    fn tolerance(&self) -> f64 {
        self.interval() * f64::from(self.burst - 1)
    }
}

/// What `acquire` decided.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Slot {
    /// Booked on every key: send after this wait.
    Booked(Duration),
    /// Nothing booked: the earliest slot is this far away, more than the caller would wait.
    Later(Duration),
}

/// The pure algorithm over several keys at once. `tats` are the stored theoretical arrival
/// times (None: never used). Returns the wait for the earliest instant every key allows, and the
/// new arrival times to store — `None` when that wait exceeds `max_wait` and nothing is booked.
pub fn gcra(
    tats: &[Option<f64>],
    rates: &[Rate],
    now: f64,
    max_wait: f64,
) -> (f64, Option<Vec<f64>>) {
    let tats: Vec<f64> = tats.iter().map(|t| t.unwrap_or(now).max(now)).collect();
    let wait = tats
        .iter()
        .zip(rates)
        .map(|(tat, rate)| tat - rate.tolerance() - now)
        .fold(0.0, f64::max);
    if wait > max_wait {
        return (wait, None);
    }
    let at = now + wait;
    let booked = tats
        .iter()
        .zip(rates)
        .map(|(tat, rate)| tat.max(at) + rate.interval())
        .collect();
    (wait, Some(booked))
}

/// Lua: the same algorithm atomically in Redis, with Redis's clock. KEYS are the rate keys;
/// ARGV[1] is max_wait, then an (interval, tolerance) pair per key, in seconds. Returns the wait
/// in microseconds when booked, or -(1 + wait) when not.
const ACQUIRE: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local max_wait = tonumber(ARGV[1])
local tats = {}
local wait = 0
for i = 1, #KEYS do
  local tat = tonumber(redis.call('GET', KEYS[i]) or now)
  if tat < now then tat = now end
  tats[i] = tat
  local w = tat - tonumber(ARGV[2 * i + 1]) - now
  if w > wait then wait = w end
end
if wait > max_wait then
  return -1 - math.floor(wait * 1000000)
end
local at = now + wait
for i = 1, #KEYS do
  local tat = tats[i]
  if tat < at then tat = at end
  local new_tat = tat + tonumber(ARGV[2 * i])
  redis.call('SET', KEYS[i], tostring(new_tat), 'PX', math.ceil((new_tat - now) * 1000) + 1000)
end
return math.floor(wait * 1000000)
";

/// Lua: how far a key's schedule runs ahead of Redis's clock, in microseconds (0 when idle).
const AHEAD: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then return 0 end
return math.floor((tat - now) * 1000000)
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

/// Lua: gives back one booked slot (`ARGV[1]` is the interval in seconds), for an event that was
/// admitted but turned out not to count.
const RELEASE: &str = r"
local tat = tonumber(redis.call('GET', KEYS[1]) or 0)
if tat > 0 then
  redis.call('SET', KEYS[1], tostring(tat - tonumber(ARGV[1])), 'KEEPTTL')
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

fn micros(n: i64) -> Duration {
    Duration::from_micros(u64::try_from(n).unwrap_or(0))
}

impl RateLimiter {
    pub fn new(redis: Option<redis::aio::ConnectionManager>, prefix: &str) -> Self {
        Self {
            local: Arc::default(),
            redis,
            prefix: format!("{prefix}rate:"),
        }
    }

    /// Books one slot on every key of `limits` for a send that will wait at most `max_wait`;
    /// books nothing when the slot is further away than that.
    pub async fn acquire(&self, limits: &[(String, Rate)], max_wait: Duration) -> Slot {
        if limits.is_empty() {
            return Slot::Booked(Duration::ZERO);
        }
        if let Some(mut redis) = self.redis.clone() {
            let script = redis::Script::new(ACQUIRE);
            let mut invocation = script.prepare_invoke();
            invocation.arg(max_wait.as_secs_f64());
            for (key, rate) in limits {
                invocation
                    .key(format!("{}{key}", self.prefix))
                    .arg(rate.interval())
                    .arg(rate.tolerance());
            }
            match invocation.invoke_async::<i64>(&mut redis).await {
                Ok(n) if n >= 0 => return Slot::Booked(micros(n)),
                Ok(n) => return Slot::Later(micros(-1 - n)),
                Err(e) => {
                    tracing::warn!(error = %e, "redis unavailable for rate limiting; limiting in-process")
                }
            }
        }
        self.acquire_local(limits, max_wait, now_secs())
    }

    fn acquire_local(&self, limits: &[(String, Rate)], max_wait: Duration, now: f64) -> Slot {
        let mut map = self.lock();
        if map.len() > 100_000 {
            map.retain(|_, tat| *tat > now);
        }
        let tats: Vec<Option<f64>> = limits.iter().map(|(k, _)| map.get(k).copied()).collect();
        let rates: Vec<Rate> = limits.iter().map(|(_, r)| *r).collect();
        let (wait, booked) = gcra(&tats, &rates, now, max_wait.as_secs_f64());
        let wait = Duration::from_secs_f64(wait);
        let Some(booked) = booked else {
            return Slot::Later(wait);
        };
        for ((key, _), tat) in limits.iter().zip(booked) {
            map.insert(key.clone(), tat);
        }
        Slot::Booked(wait)
    }

    /// How far `key`'s schedule runs ahead of the clock (what is booked and not yet due).
    pub async fn ahead(&self, key: &str) -> Duration {
        if let Some(mut redis) = self.redis.clone() {
            let result: redis::RedisResult<i64> = redis::Script::new(AHEAD)
                .key(format!("{}{key}", self.prefix))
                .invoke_async(&mut redis)
                .await;
            if let Ok(n) = result {
                return micros(n);
            }
        }
        let tat = self.lock().get(key).copied().unwrap_or(0.0);
        Duration::from_secs_f64((tat - now_secs()).max(0.0))
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
        let until = now_secs() + duration.as_secs_f64();
        let mut map = self.lock();
        let tat = map.entry(key.to_owned()).or_insert(until);
        if *tat < until {
            *tat = until;
        }
    }

    /// Gives back one slot booked on `key` at `rate`.
    pub async fn release(&self, key: &str, rate: Rate) {
        if let Some(mut redis) = self.redis.clone() {
            let result: redis::RedisResult<i64> = redis::Script::new(RELEASE)
                .key(format!("{}{key}", self.prefix))
                .arg(rate.interval())
                .invoke_async(&mut redis)
                .await;
            if result.is_ok() {
                return;
            }
        }
        if let Some(tat) = self.lock().get_mut(key) {
            *tat -= rate.interval();
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, f64>> {
        self.local
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Books `n` sends of one key at `now`, returning each wait (None: not booked).
    fn book(
        tat: &mut Option<f64>,
        rate: Rate,
        now: f64,
        max_wait: f64,
        n: usize,
    ) -> Vec<Option<f64>> {
        (0..n)
            .map(|_| {
                let (wait, booked) = gcra(&[*tat], &[rate], now, max_wait);
                booked.map(|b| {
                    *tat = Some(b[0]);
                    wait
                })
            })
            .collect()
    }

    #[test]
    fn spaces_events_by_the_interval() {
        let mut tat = None;
        let waits = book(&mut tat, Rate::per_minute(60), 1000.0, 60.0, 3);
        assert_eq!(
            waits,
            vec![Some(0.0), Some(1.0), Some(2.0)],
            "60 per minute: one a second"
        );
    }

    #[test]
    fn bursts_are_allowed_up_to_the_tolerance() {
        let mut tat = None;
        let waits = book(
            &mut tat,
            Rate::per_minute(60).with_burst(3),
            1000.0,
            60.0,
            5,
        );
        assert_eq!(
            waits,
            vec![Some(0.0), Some(0.0), Some(0.0), Some(1.0), Some(2.0)]
        );
    }

    #[test]
    fn idle_time_is_not_banked_beyond_the_burst() {
        let rate = Rate::per_minute(60);
        let mut tat = None;
        book(&mut tat, rate, 1000.0, 60.0, 1);
        assert_eq!(book(&mut tat, rate, 5000.0, 60.0, 1), vec![Some(0.0)]);
        assert_eq!(tat, Some(5001.0));
    }

    #[test]
    fn a_backlog_beyond_the_wait_books_nothing_and_the_schedule_stays_near() {
        // 300 a minute, callers wait at most 2.05 s: 11 sends get a slot (0 s … 2 s), the
        // other 9,989 are told to come back and leave the schedule where it was.
        let rate = Rate::per_minute(300);
        let mut tat = None;
        let waits = book(&mut tat, rate, 1000.0, 2.05, 10_000);
        assert_eq!(waits.iter().flatten().count(), 11);
        assert!(
            tat.is_some_and(|t| t <= 1000.0 + 2.05 + rate.interval()),
            "{tat:?}"
        );
        let (wait, booked) = gcra(&[tat], &[rate], 1000.0, 2.05);
        assert!(booked.is_none() && (wait - 2.2).abs() < 1e-9, "{wait}");
        // Once the clock reaches it, the next slot is booked as if nobody had asked meanwhile.
        let (wait, booked) = gcra(&[tat], &[rate], 1000.3, 2.05);
        assert!(booked.is_some() && (wait - 1.9).abs() < 1e-9, "{wait}");
    }

    #[test]
    fn several_keys_book_together_or_not_at_all() {
        let fast = Rate::per_minute(600);
        let slow = Rate::per_minute(6);
        // The slow key was used a moment ago: its next slot is 10 s away.
        let (wait, booked) = gcra(&[None, Some(1010.0)], &[fast, slow], 1000.0, 5.0);
        assert_eq!(
            (wait, booked),
            (10.0, None),
            "the fast key keeps its capacity"
        );
        let (wait, booked) = gcra(&[Some(1000.5), Some(1003.0)], &[fast, slow], 1000.0, 5.0);
        assert_eq!(wait, 3.0);
        assert_eq!(
            booked,
            Some(vec![1003.1, 1013.0]),
            "both booked at the common instant"
        );
    }

    #[tokio::test]
    async fn penalty_delays_the_next_slot() {
        let limiter = RateLimiter::new(None, "");
        limiter.penalize("acct", Duration::from_secs(30)).await;
        let limits = [("acct".to_owned(), Rate::per_minute(600))];
        match limiter.acquire(&limits, Duration::from_secs(60)).await {
            Slot::Booked(wait) => assert!(wait >= Duration::from_secs(29), "{wait:?}"),
            other => panic!("{other:?}"),
        }
        let ahead = limiter.ahead("acct").await;
        assert!(
            ahead > Duration::from_secs(29) && ahead < Duration::from_secs(31),
            "{ahead:?}"
        );
        let again = limiter.acquire(&limits, Duration::from_secs(5)).await;
        assert!(
            matches!(again, Slot::Later(w) if w > Duration::from_secs(29)),
            "{again:?}"
        );
        assert!(
            limiter.ahead("acct").await <= ahead,
            "a refused slot books nothing"
        );
    }
}
