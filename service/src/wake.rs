//! Wake-ups across processes. A [`Signal`] is raised after a change someone waits for (a task
//! to start, an event to read); the waiter in this process wakes at once and, when Redis is
//! configured, so do the waiters of every other process (`PUBLISH` on a channel per signal).
//! Waiters still look on their own after a bounded wait, so a lost message or a missing Redis
//! only delays them by that bound.

use std::{
    sync::{Arc, OnceLock},
    time::Duration,
};

use secrecy::ExposeSecret;
use tokio::sync::Notify;

use crate::Context;

/// One kind of change and its waiters.
pub struct Signal {
    /// The Redis channel's name after the key prefix.
    name: &'static str,
    notify: Notify,
    listening: OnceLock<()>,
    /// Whether raises travel between processes (through Redis, when configured).
    shared: bool,
}

impl Signal {
    pub fn new(name: &'static str) -> Arc<Self> {
        Self::with(name, true)
    }

    /// A signal only this process raises and waits for: no Redis subscription, no publish.
    pub fn local(name: &'static str) -> Arc<Self> {
        Self::with(name, false)
    }

    fn with(name: &'static str, shared: bool) -> Arc<Self> {
        Arc::new(Self {
            name,
            notify: Notify::new(),
            listening: OnceLock::new(),
            shared,
        })
    }

    /// Wakes this process's waiter (or the next one to wait) and announces the change to the
    /// other processes. Never fails: a waiter that misses the announcement looks at its bound.
    pub async fn raise(&self, ctx: &Context) {
        self.notify.notify_one();
        if let Some(redis) = ctx.redis.as_ref().filter(|_| self.shared) {
            let mut conn = redis.clone();
            let sent: redis::RedisResult<i64> = redis::cmd("PUBLISH")
                .arg(self.channel(ctx))
                .arg(1)
                .query_async(&mut conn)
                .await;
            if let Err(e) = sent {
                tracing::debug!(signal = self.name, error = %e, "could not announce on Redis");
            }
        }
    }

    /// Wakes this process's waiter only (the change cannot concern other processes).
    pub fn raise_here(&self) {
        self.notify.notify_one();
    }

    /// Returns when the signal is raised here or elsewhere, or after `at_most`.
    pub async fn wait(self: &Arc<Self>, ctx: &Context, at_most: Duration) {
        self.listen(ctx);
        tokio::select! {
            () = self.notify.notified() => {}
            () = tokio::time::sleep(at_most) => {}
        }
    }

    /// Starts, once per process, the Redis subscription that relays other processes' raises.
    pub fn listen(self: &Arc<Self>, ctx: &Context) {
        if self.shared && ctx.redis.is_some() && self.listening.set(()).is_ok() {
            tokio::spawn(self.clone().relay(ctx.clone()));
        }
    }

    fn channel(&self, ctx: &Context) -> String {
        format!("{}{}", ctx.settings.redis.key_prefix, self.name)
    }

    async fn relay(self: Arc<Self>, ctx: Context) {
        use futures_util::StreamExt;
        let url = ctx.settings.redis.url.expose_secret().to_owned();
        let channel = self.channel(&ctx);
        loop {
            let result: redis::RedisResult<()> = async {
                let client = redis::Client::open(url.as_str())?;
                let mut pubsub = client.get_async_pubsub().await?;
                pubsub.subscribe(&channel).await?;
                let mut messages = pubsub.on_message();
                while messages.next().await.is_some() {
                    self.notify.notify_one();
                }
                Ok(())
            }
            .await;
            if let Err(e) = result {
                tracing::debug!(signal = self.name, error = %e, "subscription lost; reconnecting");
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
}
