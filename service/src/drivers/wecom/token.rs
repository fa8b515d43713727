//! Access tokens per (corp id, secret), cached in-process and, when configured, in Redis so every
//! worker shares one token. Refreshes are single-flight: one per process (a mutex per key) and,
//! with Redis, one across processes (a short `SET NX` lock) — several processes refreshing the
//! same token overwrite each other and trip WeCom's frequency limits.

use std::{collections::HashMap, future::Future, sync::Arc, time::Duration};

use redis::AsyncCommands;
use sha2::{Digest, Sha256};
use tokio::sync::Mutex;

use super::super::DriverError;

/// Refresh this long before WeCom's expiry.
const MARGIN_SECS: i64 = 300;

#[derive(Clone, Default)]
pub struct TokenCache {
    local: Arc<std::sync::Mutex<HashMap<String, (String, i64)>>>,
    flights: Arc<std::sync::Mutex<HashMap<String, Arc<Mutex<()>>>>>,
    redis: Option<redis::aio::ConnectionManager>,
    prefix: String,
}

impl std::fmt::Debug for TokenCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenCache")
            .field("redis", &self.redis.is_some())
            .finish_non_exhaustive()
    }
}

/// The cache key: never the secret itself. The API base is part of it — a token from one host
/// (a relay, a test double) means nothing at another, and instances pointing at different hosts
/// must not wait on each other's refreshes.
pub fn key_for(base: &str, corp_id: &str, secret: &str) -> String {
    let digest = Sha256::digest(format!("{base}\n{corp_id}:{secret}").as_bytes());
    digest.iter().take(12).map(|b| format!("{b:02x}")).collect()
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

impl TokenCache {
    pub fn new(redis: Option<redis::aio::ConnectionManager>, prefix: String) -> Self {
        Self {
            redis,
            prefix: format!("{prefix}wecom-token:"),
            ..Self::default()
        }
    }

    fn local_get(&self, key: &str) -> Option<String> {
        let map = self.local.lock().ok()?;
        map.get(key)
            .filter(|(_, expires)| *expires > now())
            .map(|(t, _)| t.clone())
    }

    async fn redis_get(&self, key: &str) -> Option<String> {
        let mut redis = self.redis.clone()?;
        match redis
            .get::<_, Option<String>>(format!("{}{key}", self.prefix))
            .await
        {
            Ok(token) => token,
            Err(e) => {
                tracing::warn!(error = %e, "redis unavailable for the token cache; using the local copy");
                None
            }
        }
    }

    fn remember(&self, key: &str, token: &str, ttl: i64) {
        if let Ok(mut map) = self.local.lock() {
            map.insert(key.to_owned(), (token.to_owned(), now() + ttl));
        }
    }

    /// A valid token for `key`, fetching one with `fetch` (→ token, seconds valid) when needed.
    pub async fn get<F, Fut>(&self, key: &str, fetch: F) -> Result<String, DriverError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<(String, i64), DriverError>>,
    {
        if let Some(token) = self.local_get(key) {
            return Ok(token);
        }
        let flight = {
            let Ok(mut flights) = self.flights.lock() else {
                return Err(DriverError::Transient {
                    code: "lock".into(),
                    message: "token lock poisoned".into(),
                    retry_after: None,
                });
            };
            flights.entry(key.to_owned()).or_default().clone()
        };
        let _guard = flight.lock().await;
        if let Some(token) = self.local_get(key) {
            return Ok(token);
        }
        if let Some(token) = self.redis_get(key).await {
            self.remember(key, &token, 60);
            return Ok(token);
        }
        let locked = self.lock_across_processes(key).await;
        if !locked {
            // Another process is refreshing: wait for its token while it holds the lock (at
            // most the lock's 10 s); if it lets go without one, its fetch failed — try ourselves.
            for _ in 0..100 {
                tokio::time::sleep(Duration::from_millis(100)).await;
                if let Some(token) = self.redis_get(key).await {
                    self.remember(key, &token, 60);
                    return Ok(token);
                }
                if !self.lock_held(key).await {
                    break;
                }
            }
        }
        let result = fetch().await;
        if let Ok((token, expires_in)) = &result {
            let ttl = (*expires_in - MARGIN_SECS).max(30);
            self.remember(key, token, ttl);
            if let Some(mut redis) = self.redis.clone() {
                let stored: redis::RedisResult<()> = redis
                    .set_ex(
                        format!("{}{key}", self.prefix),
                        token,
                        u64::try_from(ttl).unwrap_or(30),
                    )
                    .await;
                if let Err(e) = stored {
                    tracing::warn!(error = %e, "could not share the access token through redis");
                }
            }
        }
        if locked && let Some(mut redis) = self.redis.clone() {
            let _: redis::RedisResult<()> = redis.del(format!("{}{key}:lock", self.prefix)).await;
        }
        result.map(|(token, _)| token)
    }

    /// Whether some process holds the refresh lock of `key` (`false` without Redis or on error).
    async fn lock_held(&self, key: &str) -> bool {
        let Some(mut redis) = self.redis.clone() else {
            return false;
        };
        redis
            .exists::<_, bool>(format!("{}{key}:lock", self.prefix))
            .await
            .unwrap_or(false)
    }

    /// `true` when this process may refresh (it holds the lock, or there is no Redis).
    async fn lock_across_processes(&self, key: &str) -> bool {
        let Some(mut redis) = self.redis.clone() else {
            return true;
        };
        let acquired: redis::RedisResult<Option<String>> = redis::cmd("SET")
            .arg(format!("{}{key}:lock", self.prefix))
            .arg("1")
            .arg("NX")
            .arg("PX")
            .arg(10_000)
            .query_async(&mut redis)
            .await;
        match acquired {
            Ok(reply) => reply.is_some(),
            Err(_) => true,
        }
    }

    /// Forgets `token` after WeCom called it invalid or expired.
    pub async fn invalidate(&self, key: &str, token: &str) {
        if let Ok(mut map) = self.local.lock()
            && map.get(key).is_some_and(|(t, _)| t == token)
        {
            map.remove(key);
        }
        if self.redis_get(key).await.as_deref() == Some(token)
            && let Some(mut redis) = self.redis.clone()
        {
            let _: redis::RedisResult<()> = redis.del(format!("{}{key}", self.prefix)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    #[tokio::test]
    async fn concurrent_callers_share_one_refresh() {
        let cache = TokenCache::new(None, String::new());
        let fetches = Arc::new(AtomicU32::new(0));
        let mut tasks = Vec::new();
        for _ in 0..8 {
            let cache = cache.clone();
            let fetches = fetches.clone();
            tasks.push(tokio::spawn(async move {
                cache
                    .get("k", || async move {
                        fetches.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        Ok(("tok".to_owned(), 7200))
                    })
                    .await
            }));
        }
        for task in tasks {
            assert_eq!(task.await.unwrap().unwrap(), "tok");
        }
        assert_eq!(fetches.load(Ordering::SeqCst), 1);
        cache.invalidate("k", "tok").await;
        let again = cache
            .get("k", || async { Ok(("tok2".to_owned(), 7200)) })
            .await
            .unwrap();
        assert_eq!(again, "tok2");
    }

    #[test]
    fn keys_hide_the_secret() {
        let key = key_for("https://qyapi.weixin.qq.com/cgi-bin", "corp", "very-secret");
        assert_ne!(
            key,
            key_for("http://relay:8080/cgi-bin", "corp", "very-secret")
        );
        assert!(!key.contains("secret") && key.len() == 24);
    }
}
