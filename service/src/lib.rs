//! The domain: every business rule of wework, with no HTTP and no queue types.

pub mod audit;
pub mod auth;
pub mod bootstrap;
pub mod clock;
pub mod config;
pub mod context;
pub mod crypto;
pub mod db;
pub mod error;
pub mod health;
pub mod housekeeping;
pub mod pagination;
pub mod rbac;
pub mod search;
pub mod serde_util;
pub mod throttle;
pub mod validate;

pub use context::Context;
pub use error::{FieldError, ServiceError, ServiceResult};
