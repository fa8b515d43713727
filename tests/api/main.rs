//! Black-box tests of the wework API: each test starts the real application on a random port
//! with a database of its own. `WEWORK_TEST_BACKEND` picks SQLite (default), `mysql` (MariaDB /
//! MySQL 8) or `postgres`; `WEWORK_TEST_REDIS_URL` adds Redis. `scripts/test` runs every backend.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod helpers;

mod alerts;
mod auth;
mod callbacks;
mod cli;
mod console_session;
mod contacts;
mod crash;
mod data_scopes;
mod desk;
mod desk_kf;
mod desk_team;
mod drivers;
mod errors;
mod estimate;
mod health;
mod idempotency;
mod instances;
mod logs;
mod messages;
mod metrics;
mod monitoring;
mod openapi_routes;
mod opt_out;
mod outages;
mod progress;
mod races;
mod rate_limits;
mod rbac;
mod replica;
mod retention;
mod runs;
mod schema;
mod secret_leaks;
mod segments;
mod tasks;
mod telemetry_servers;
mod totp;
mod variants;
