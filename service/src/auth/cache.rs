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

use std::{
    collections::HashMap,
    sync::{
        Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use chrono::NaiveDateTime;

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

/// Values read from the database within the last `TTL`, under the current epoch: the same
/// staleness bound for whatever a request would otherwise read again.
pub struct FreshCache<K, V> {
    entries: Mutex<HashMap<K, Entry<V>>>,
}

impl<K, V> Default for FreshCache<K, V> {
    fn default() -> Self {
        Self {
            entries: Mutex::new(HashMap::new()),
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
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let entry = entries.get(key)?;
        if entry.fresh(now, epoch()) {
            return Some(entry.value.clone());
        }
        entries.remove(key);
        None
    }

    /// Keeps `value` as read under `epoch`, good until `valid_until` at the latest.
    pub fn put(&self, key: K, value: V, valid_until: NaiveDateTime, epoch: u64) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
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

/// Resolved access tokens by their SHA-256 (the form the sessions table keeps; the token
/// itself is not held), each good until its session's access or absolute end.
#[derive(Debug, Default)]
pub struct ActorCache(FreshCache<String, Actor>);

impl ActorCache {
    /// The actor a token resolved to within the last `TTL`, if nothing has changed since.
    pub fn get(&self, token_hash: &str, now: NaiveDateTime) -> Option<Actor> {
        self.0.get(token_hash, now)
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
