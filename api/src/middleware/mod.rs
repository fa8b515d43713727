//! Request-scoped middleware: request ids and context, access logs, Prometheus metrics,
//! authentication and browser security headers.

mod access_log;
mod authenticate;
mod metrics;
mod request_id;
mod security_headers;

pub use access_log::access_log;
pub use authenticate::{AuthOutcome, authenticate};
pub use metrics::{HttpMetrics, record_metrics};
pub use request_id::{RequestContext, request_context, request_id};
pub use security_headers::security_headers;
