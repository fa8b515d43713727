//! Request extractors that turn HTTP input into validated values or problem+json errors.

mod auth;
pub mod body;
pub mod client;
mod idempotency;
mod json;
mod path;
mod query;

pub use auth::{Access, Authenticated, Authorized, Public, access_of};
pub use client::request_meta;
pub use idempotency::{HEADER as IDEMPOTENCY_HEADER, IdempotencyKey};
pub use json::ValidJson;
pub use path::{AgentId, Id, SessionId};
pub use query::ValidQuery;
