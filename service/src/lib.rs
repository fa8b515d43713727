//! The domain: every business rule of wework, with no HTTP and no queue types.

pub mod alerts;
pub mod audit;
pub mod auth;
pub mod bootstrap;
pub mod callbacks;
pub mod clock;
pub mod config;
pub mod contacts;
pub mod context;
pub mod crypto;
pub mod csv_out;
pub mod db;
pub mod desk;
pub mod dispatch;

pub mod drivers;
pub mod error;
pub mod health;
pub mod housekeeping;
pub mod idempotency;

pub mod instances;
pub mod logs;
pub mod messages;
pub mod monitoring;

pub mod net;
pub mod pagination;
pub mod rbac;
pub mod search;
pub mod secrets;
pub mod segments;
pub mod serde_util;
pub mod stream_slots;
pub mod sync;
pub mod tasks;
pub mod telemetry;

pub mod templates;

pub mod throttle;
pub mod validate;
pub mod wake;

pub use context::Context;
pub use error::{FieldError, ServiceError, ServiceResult};
