//! Request-scoped middleware: request ids and context, access logs, Prometheus metrics.

mod access_log;
mod authenticate;
mod metrics;
mod request_id;

pub use access_log::access_log;
pub use authenticate::{AuthOutcome, authenticate};
pub use metrics::{HttpMetrics, record_metrics};
pub use request_id::{RequestContext, request_context, request_id};
