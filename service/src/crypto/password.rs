//! argon2id password hashing with the OWASP parameters (the `argon2` crate's defaults:
//! m = 19 MiB, t = 2, p = 1).
//!
//! Each hash costs tens of milliseconds of CPU, so it never runs on the request executor: a
//! login flood would stall every other request behind it. Hashes run on tokio's blocking pool,
//! at most one per core at a time (the rest queue for a permit), so the executor keeps its
//! threads and other requests their latency.

use std::sync::LazyLock;

use argon2::{
    Argon2, PasswordHash, PasswordHasher, PasswordVerifier,
    password_hash::{SaltString, rand_core::OsRng},
};
use tokio::sync::Semaphore;

/// Hashes allowed to run at once: one per core.
static HASH_PERMITS: LazyLock<Semaphore> = LazyLock::new(|| {
    Semaphore::new(std::thread::available_parallelism().map_or(1, std::num::NonZero::get))
});

/// Runs `work` on the blocking pool once a permit is free.
async fn off_executor<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> T {
    // The semaphore is never closed; were it, hashing would go on unbounded rather than fail.
    let _permit = HASH_PERMITS.acquire().await.ok();
    match tokio::task::spawn_blocking(work).await {
        Ok(value) => value,
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    }
}

pub async fn hash(password: &str) -> anyhow::Result<String> {
    let password = password.to_owned();
    off_executor(move || hash_now(&password)).await
}

/// Constant-time verification; a malformed stored hash never verifies.
pub async fn verify(password: &str, stored: &str) -> bool {
    let (password, stored) = (password.to_owned(), stored.to_owned());
    off_executor(move || verify_now(&password, &stored)).await
}

/// The same work as `verify` against a hash of a random password, for a user who does not
/// exist, so that unknown and known usernames take the same time.
pub async fn verify_dummy(password: &str) {
    let password = password.to_owned();
    off_executor(move || verify_now(&password, dummy_hash())).await;
}

fn hash_now(password: &str) -> anyhow::Result<String> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| anyhow::anyhow!("argon2 hashing failed: {e}"))
}

fn verify_now(password: &str, stored: &str) -> bool {
    PasswordHash::new(stored).is_ok_and(|parsed| {
        Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok()
    })
}

fn dummy_hash() -> &'static str {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DUMMY.get_or_init(|| hash_now(&super::token::random_token("dummy")).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_are_argon2id_and_verify() {
        let h = hash("correct horse battery").await.unwrap();
        assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{h}");
        assert!(verify("correct horse battery", &h).await);
        assert!(!verify("wrong", &h).await);
        assert!(!verify("x", "not-a-hash").await);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn hashing_leaves_the_executor_free() {
        // On a single-threaded runtime a hash on the executor would hold every other task.
        let ticks = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
        let ticker = {
            let ticks = ticks.clone();
            tokio::spawn(async move {
                loop {
                    ticks.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    tokio::task::yield_now().await;
                }
            })
        };
        hash("correct horse battery").await.unwrap();
        ticker.abort();
        assert!(
            ticks.load(std::sync::atomic::Ordering::Relaxed) > 1,
            "other tasks ran while the hash was computed"
        );
    }
}
