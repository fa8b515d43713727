//! Request-scoped middleware: request ids and context, Prometheus metrics.

mod authenticate;
mod metrics;
mod request_id;

pub use authenticate::{AuthOutcome, authenticate};
pub use metrics::{HttpMetrics, record_metrics};
pub use request_id::{RequestContext, request_context, request_id};
