//! Everything a service function needs, built once at start-up and cheap to clone.

use std::sync::Arc;

use sea_orm::DatabaseConnection;
use secrecy::ExposeSecret;

use crate::{
    clock::{Clock, SystemClock},
    config::Settings,
    crypto::sealer::Sealer,
    dispatch::ratelimit::RateLimiter,
    drivers::wecom::token::TokenCache,
    net::client::OutboundClient,
    telemetry::Telemetry,
    throttle::FailureThrottle,
};

#[derive(Clone)]
pub struct Context {
    pub db: DatabaseConnection,
    /// For lists, search and reports: the read replica (`database.read_url`) when one is set,
    /// else the same pool as `db`. What must see the caller's own writes reads `db`.
    pub read_db: DatabaseConnection,
    pub settings: Arc<Settings>,
    pub sealer: Sealer,
    pub clock: Arc<dyn Clock>,
    pub login_throttle: FailureThrottle,
    pub redis: Option<redis::aio::ConnectionManager>,
    /// HTTP client for user-configured destinations, behind the SSRF policy.
    pub outbound: OutboundClient,
    /// WeCom access tokens, shared through Redis when configured.
    pub tokens: TokenCache,
    /// Send rate limits, shared through Redis when configured.
    pub limiter: RateLimiter,
    /// Metric points bound for InfluxDB, log records bound for Elasticsearch or SQL.
    pub telemetry: Telemetry,
    /// Access tokens resolved within the last second (`auth::cache`).
    pub auth_cache: Arc<crate::auth::cache::ActorCache>,
    /// Users' own profiles (`GET /auth/me`) read within the last second, by user id.
    pub profile_cache: Arc<crate::auth::cache::FreshCache<i64, crate::rbac::users::UserView>>,
    /// This process's reader of the service desk's event log (`desk::events`).
    pub desk_hub: Arc<crate::desk::events::Hub>,
    /// Raised when a task may have become due sooner than the scheduler planned (created,
    /// resumed, back to `scheduled` after a run): the scheduler looks again at once.
    pub schedule_signal: Arc<crate::wake::Signal>,
    /// Raised when the scheduler created runs whose audiences wait for expansion.
    pub expand_signal: Arc<crate::wake::Signal>,
    /// Turns at SQLite's write lock for the dispatch chains (`db::WriteTurns`).
    pub write_turns: crate::db::WriteTurns,
}

impl Context {
    /// Connects to the database (and Redis when configured) and loads the master key.
    pub async fn connect(settings: Settings) -> anyhow::Result<Self> {
        let db = crate::db::connect(&settings.database).await?;
        Self::with_db(settings, db, Arc::new(SystemClock)).await
    }

    pub async fn with_db(
        settings: Settings,
        db: DatabaseConnection,
        clock: Arc<dyn Clock>,
    ) -> anyhow::Result<Self> {
        let sealer = crate::db::load_master_key(&settings.secrets)?;
        let redis = match settings.redis.url.expose_secret() {
            "" => None,
            url => Some(crate::db::connect_redis(url).await?),
        };
        let login_throttle = FailureThrottle::new(
            settings.auth.ip_failures_per_minute,
            redis.clone(),
            &format!("{}login-", settings.redis.key_prefix),
        );
        let outbound = OutboundClient::new(&settings.outbound).map_err(|e| anyhow::anyhow!(e))?;
        let tokens = TokenCache::new(redis.clone(), settings.redis.key_prefix.clone());
        let limiter = RateLimiter::new(redis.clone(), &settings.redis.key_prefix);
        let telemetry = Telemetry::start(&settings, &db)?;
        let read_db = crate::db::connect_reader(&settings.database, &db).await?;
        for conn in [&db, &read_db] {
            crate::contacts::keyword::detect_index(conn).await?;
        }
        Ok(Self {
            write_turns: crate::db::WriteTurns::for_backend(db.get_database_backend()),
            db,
            read_db,
            settings: Arc::new(settings),
            sealer,
            clock,
            login_throttle,
            redis,
            outbound,
            tokens,
            limiter,
            telemetry,
            auth_cache: Arc::default(),
            profile_cache: Arc::default(),
            desk_hub: Arc::default(),
            schedule_signal: crate::wake::Signal::new("tasks-due"),
            // Runs to expand are made by this process's scheduler; any expander may take them.
            expand_signal: crate::wake::Signal::local("runs-to-expand"),
        })
    }
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("backend", &self.settings.backend())
            .field("redis", &self.redis.is_some())
            .finish_non_exhaustive()
    }
}
