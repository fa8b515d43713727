//! Resolved access tokens, kept for at most a second: an authenticated request then costs no
//! database query when the same token was resolved a moment ago (an API client or the console
//! sending request after request). The second is the bound on how stale an answer may be in any
//! process — a logout, a revoked session, a disabled user or a changed role or permission takes
//! effect everywhere within it. Within the process that made the change it takes effect at
//! once: every request that changes something moves a process-wide epoch when it is done, and
//! an entry filled under an older epoch is not used.
//!
//! The same rule serves other reads a request repeats (`FreshCache`): a user's own profile,
//! which the console asks for on every page.
//!
//! Requests that miss the same entry together wait for one read (`FreshCache::get_or_load`):
//! when a busy client's entry ages out, its concurrent requests would otherwise all read it.

use std::{
    collections::HashMap,
    sync::{
        Mutex, MutexGuard,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use chrono::NaiveDateTime;
use tokio::sync::watch;

use super::actor::Actor;

/// How long a resolved token is trusted without asking the database again: under a second, so a
/// change is seen everywhere within one, request time included.
pub const TTL: Duration = Duration::from_millis(900);
/// Entries kept before the stale ones are swept (each is one token seen within `TTL`).
const MAX_ENTRIES: usize = 10_000;

static EPOCH: AtomicU64 = AtomicU64::new(0);

/// Forgets every resolved token of this process (they are resolved again on next use).
pub fn invalidate() {
    EPOCH.fetch_add(1, Ordering::SeqCst);
}

/// The epoch a resolution starts under; an entry keeps it and is good only while it holds.
pub fn epoch() -> u64 {
    EPOCH.load(Ordering::SeqCst)
}

struct Entry<V> {
    value: V,
    valid_until: NaiveDateTime,
    at: Instant,
    epoch: u64,
}

impl<V> Entry<V> {
    fn fresh(&self, now: NaiveDateTime, epoch: u64) -> bool {
        self.epoch == epoch && self.at.elapsed() < TTL && now < self.valid_until
    }
}

/// A read of one key in progress, which requests missing the same key wait for.
struct Flight<V> {
    id: u64,
    /// The epoch the read started under: only requests under the same one may share it.
    epoch: u64,
    done: watch::Receiver<Option<V>>,
}

/// Values read from the database within the last `TTL`, under the current epoch: the same
/// staleness bound for whatever a request would otherwise read again.
pub struct FreshCache<K, V> {
    entries: Mutex<HashMap<K, Entry<V>>>,
    flights: Mutex<HashMap<K, Flight<V>>>,
    next_flight: AtomicU64,
}

impl<K, V> Default for FreshCache<K, V> {
    fn default() -> Self {
        Self {
            entries: Mutex::new(HashMap::new()),
            flights: Mutex::new(HashMap::new()),
            next_flight: AtomicU64::new(0),
        }
    }
}

/// A lock that a panicking holder cannot spoil: the maps stay usable as they are.
fn locked<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Ends a flight when its read is done or dropped (a request cancelled mid-read): its waiters
/// then see the value, or the closed channel and read for themselves.
struct Landing<'a, K: std::hash::Hash + Eq, V> {
    flights: &'a Mutex<HashMap<K, Flight<V>>>,
    key: Option<K>,
    id: u64,
}

impl<K: std::hash::Hash + Eq, V> Drop for Landing<'_, K, V> {
    fn drop(&mut self) {
        let Some(key) = self.key.take() else { return };
        let mut flights = locked(self.flights);
        if flights.get(&key).is_some_and(|f| f.id == self.id) {
            flights.remove(&key);
        }
    }
}

impl<K, V> std::fmt::Debug for FreshCache<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FreshCache").finish_non_exhaustive()
    }
}

impl<K: std::hash::Hash + Eq, V: Clone> FreshCache<K, V> {
    /// The value kept for `key` within the last `TTL`, if nothing has changed since and it is
    /// still good at `now`.
    pub fn get<Q>(&self, key: &Q, now: NaiveDateTime) -> Option<V>
    where
        K: std::borrow::Borrow<Q>,
        Q: std::hash::Hash + Eq + ?Sized,
    {
        let mut entries = locked(&self.entries);
        let entry = entries.get(key)?;
        if entry.fresh(now, epoch()) {
            return Some(entry.value.clone());
        }
        entries.remove(key);
        None
    }

    /// Keeps `value` as read under `epoch`, good until `valid_until` at the latest.
    pub fn put(&self, key: K, value: V, valid_until: NaiveDateTime, epoch: u64) {
        let mut entries = locked(&self.entries);
        if entries.len() >= MAX_ENTRIES {
            let (now, current) = (chrono::Utc::now().naive_utc(), self::epoch());
            entries.retain(|_, e| e.fresh(now, current));
            if entries.len() >= MAX_ENTRIES {
                entries.clear();
            }
        }
        entries.insert(
            key,
            Entry {
                value,
                valid_until,
                at: Instant::now(),
                epoch,
            },
        );
    }
}

impl<K: std::hash::Hash + Eq + Clone, V: Clone> FreshCache<K, V> {
    /// The value kept for `key`, else the one `load` reads (with the time it is good until),
    /// kept for the next request. Requests that miss together wait for one `load` rather than
    /// each running their own; a request joins only a read started under the current epoch, so
    /// a change made in this process before it arrived is never hidden from it. When the read
    /// fails or its request goes away, each waiter reads for itself.
    pub async fn get_or_load<E, Fut>(
        &self,
        key: K,
        now: NaiveDateTime,
        load: impl FnOnce() -> Fut,
    ) -> Result<V, E>
    where
        Fut: Future<Output = Result<(V, NaiveDateTime), E>>,
    {
        if let Some(value) = self.get(&key, now) {
            return Ok(value);
        }
        let epoch = epoch();
        let joined = {
            let mut flights = locked(&self.flights);
            match flights.get(&key) {
                Some(f) if f.epoch == epoch && f.done.has_changed().is_ok() => Ok(f.done.clone()),
                _ => {
                    let id = self.next_flight.fetch_add(1, Ordering::Relaxed);
                    let (tx, done) = watch::channel(None);
                    flights.insert(key.clone(), Flight { id, epoch, done });
                    Err((tx, id))
                }
            }
        };
        match joined {
            Ok(mut done) => {
                if let Ok(landed) = done.wait_for(Option::is_some).await
                    && let Some(value) = landed.clone()
                {
                    return Ok(value);
                }
                let (value, valid_until) = load().await?;
                self.put(key, value.clone(), valid_until, epoch);
                Ok(value)
            }
            Err((tx, id)) => {
                let _landing = Landing {
                    flights: &self.flights,
                    key: Some(key.clone()),
                    id,
                };
                let (value, valid_until) = load().await?;
                self.put(key, value.clone(), valid_until, epoch);
                tx.send_replace(Some(value.clone()));
                Ok(value)
            }
        }
    }
}

/// Resolved access tokens by their SHA-256 (the form the sessions table keeps; the token
/// itself is not held), each good until its session's access or absolute end.
#[derive(Debug, Default)]
pub struct ActorCache(FreshCache<String, Actor>);

impl ActorCache {
    /// The actor a token resolved to within the last `TTL`, if nothing has changed since.
    pub fn get(&self, token_hash: &str, now: NaiveDateTime) -> Option<Actor> {
        self.0.get(token_hash, now)
    }

    /// What `token_hash` resolves to: kept, else read by `resolve` (the actor with its session's
    /// access and absolute ends) with concurrent misses sharing one read.
    pub async fn get_or_load<E, Fut>(
        &self,
        token_hash: String,
        now: NaiveDateTime,
        resolve: impl FnOnce() -> Fut,
    ) -> Result<Actor, E>
    where
        Fut: Future<Output = Result<(Actor, NaiveDateTime, NaiveDateTime), E>>,
    {
        self.0
            .get_or_load(token_hash, now, || async {
                let (actor, access_expires_at, absolute_expires_at) = resolve().await?;
                Ok((actor, access_expires_at.min(absolute_expires_at)))
            })
            .await
    }

    /// Keeps what `token_hash` resolved to, as read under `epoch`.
    pub fn put(
        &self,
        token_hash: String,
        actor: Actor,
        access_expires_at: NaiveDateTime,
        absolute_expires_at: NaiveDateTime,
        epoch: u64,
    ) {
        let valid_until = access_expires_at.min(absolute_expires_at);
        self.0.put(token_hash, actor, valid_until, epoch);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::actor::RequestMeta;

    fn later(minutes: i64) -> NaiveDateTime {
        chrono::Utc::now().naive_utc() + chrono::TimeDelta::minutes(minutes)
    }

    type Loads = std::sync::Arc<std::sync::atomic::AtomicUsize>;

    /// A read that counts itself and answers `value` after `delay`.
    async fn counted(
        loads: Loads,
        value: u32,
        delay: Duration,
    ) -> Result<(u32, NaiveDateTime), String> {
        loads.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(delay).await;
        Ok((value, later(1)))
    }

    #[tokio::test]
    async fn requests_missing_together_share_one_read() {
        let cache = std::sync::Arc::new(FreshCache::<u32, u32>::default());
        let loads = Loads::default();
        let before = epoch();
        let requests: Vec<_> = (0..32)
            .map(|_| {
                let (cache, loads) = (cache.clone(), loads.clone());
                tokio::spawn(async move {
                    let now = chrono::Utc::now().naive_utc();
                    let read = || counted(loads, 7, Duration::from_millis(50));
                    cache.get_or_load(1, now, read).await
                })
            })
            .collect();
        for request in requests {
            assert_eq!(request.await.unwrap(), Ok(7));
        }
        // Another test moving the process-wide epoch meanwhile rightly splits the flight.
        if epoch() == before {
            assert_eq!(loads.load(Ordering::SeqCst), 1);
        }
        assert!(loads.load(Ordering::SeqCst) < 32);
    }

    #[tokio::test]
    async fn a_read_started_before_a_change_is_not_shared_after_it() {
        let cache = std::sync::Arc::new(FreshCache::<u32, u32>::default());
        let loads = Loads::default();
        let first = {
            let (cache, loads) = (cache.clone(), loads.clone());
            tokio::spawn(async move {
                let now = chrono::Utc::now().naive_utc();
                let read = || counted(loads, 1, Duration::from_millis(300));
                cache.get_or_load(1, now, read).await
            })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        invalidate();
        let now = chrono::Utc::now().naive_utc();
        let read = || counted(loads.clone(), 2, Duration::ZERO);
        assert_eq!(cache.get_or_load(1, now, read).await, Ok(2));
        assert_eq!(first.await.unwrap(), Ok(1));
        assert_eq!(loads.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn waiters_read_for_themselves_when_the_shared_read_fails_or_goes_away() {
        let cache = std::sync::Arc::new(FreshCache::<u32, u32>::default());
        for fails in [true, false] {
            let key = u32::from(fails);
            let leader = {
                let cache = cache.clone();
                tokio::spawn(async move {
                    let now = chrono::Utc::now().naive_utc();
                    cache
                        .get_or_load(key, now, || async move {
                            tokio::time::sleep(Duration::from_millis(200)).await;
                            if fails {
                                return Err("database away".to_owned());
                            }
                            std::future::pending().await
                        })
                        .await
                })
            };
            tokio::time::sleep(Duration::from_millis(50)).await;
            let waiter = {
                let cache = cache.clone();
                tokio::spawn(async move {
                    let now = chrono::Utc::now().naive_utc();
                    let read = || counted(Loads::default(), 9, Duration::ZERO);
                    cache.get_or_load(key, now, read).await
                })
            };
            tokio::time::sleep(Duration::from_millis(50)).await;
            if !fails {
                // The leading request is dropped mid-read (its client went away).
                leader.abort();
            }
            let got = tokio::time::timeout(Duration::from_secs(5), waiter).await;
            assert_eq!(got.expect("the waiter is not stranded").unwrap(), Ok(9));
        }
    }

    #[test]
    fn an_entry_serves_until_anything_changes_or_its_session_ends() {
        let cache = ActorCache::default();
        let now = chrono::Utc::now().naive_utc();
        let actor = Actor::system(RequestMeta::default());
        cache.put("a".into(), actor.clone(), later(10), later(60), epoch());
        assert!(cache.get("a", now).is_some());
        // An access token past its end is not served, whatever the cache holds.
        assert!(cache.get("a", later(11)).is_none());
        cache.put("b".into(), actor.clone(), later(10), later(60), epoch());
        invalidate();
        assert!(cache.get("b", now).is_none());
        // Read before the change, stored after it: not served either.
        let stale = epoch() - 1;
        cache.put("c".into(), actor, later(10), later(60), stale);
        assert!(cache.get("c", now).is_none());
    }
}
