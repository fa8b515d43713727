//! Fault injection, set at start and changed at run time through `PUT /_sim/faults`.

use std::{
    pin::Pin,
    task::{Context, Poll},
    time::Duration,
};

use actix_web::{
    HttpResponse,
    body::{BodySize, MessageBody},
    web::Bytes,
};
use rand::Rng;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Faults {
    /// Each answer waits a uniform time in this range (milliseconds).
    pub latency_ms_min: u64,
    pub latency_ms_max: u64,
    /// Share of calls answered with a retryable business error (WeCom `-1`, agent 503).
    pub error_rate: f64,
    /// Share of calls answered with HTTP 500.
    pub server_error_rate: f64,
    /// Share of calls that hang for `timeout_ms` before answering (the client should time out).
    pub timeout_rate: f64,
    pub timeout_ms: u64,
    /// Share of calls whose connection is cut after the headers.
    pub drop_rate: f64,
    /// Sends allowed per account per minute before WeCom 45009 / agent 429.
    pub rate_limit_per_minute: Option<u32>,
    /// Health checks fail and every call answers 503, as if the instance were down.
    pub offline: bool,
    /// The error message of those 503 answers (default "instance offline").
    pub offline_message: Option<String>,
    /// `kf/sync_msg` hands back the previous page's last entries again (WeCom warns that
    /// entries can repeat; the platform must show each once).
    pub kf_repeat: bool,
}

/// What a data endpoint should do instead of its normal answer.
pub enum Injected {
    BusinessError,
    Respond(HttpResponse),
}

impl Faults {
    /// Waits the injected latency, then maybe picks a fault. Call at the top of data endpoints.
    pub async fn apply(&self) -> Option<Injected> {
        let (delay, roll_timeout, roll_drop, roll_500, roll_err) = {
            let mut rng = rand::thread_rng();
            let delay = if self.latency_ms_max > self.latency_ms_min {
                rng.gen_range(self.latency_ms_min..=self.latency_ms_max)
            } else {
                self.latency_ms_min
            };
            (
                delay,
                rng.r#gen::<f64>(),
                rng.r#gen::<f64>(),
                rng.r#gen::<f64>(),
                rng.r#gen::<f64>(),
            )
        };
        if delay > 0 {
            tokio::time::sleep(Duration::from_millis(delay)).await;
        }
        if self.offline {
            return Some(Injected::Respond(HttpResponse::ServiceUnavailable().json(
                serde_json::json!({"error": {"code": "offline", "message": self.offline_message.as_deref().unwrap_or("instance offline")}}),
            )));
        }
        if roll_timeout < self.timeout_rate {
            tokio::time::sleep(Duration::from_millis(self.timeout_ms.max(1))).await;
        }
        if roll_drop < self.drop_rate {
            return Some(Injected::Respond(
                HttpResponse::Ok()
                    .content_type("application/json")
                    .body(FailingBody),
            ));
        }
        if roll_500 < self.server_error_rate {
            return Some(Injected::Respond(
                HttpResponse::InternalServerError().body("injected server error"),
            ));
        }
        (roll_err < self.error_rate).then_some(Injected::BusinessError)
    }
}

/// A body that fails at once: actix aborts the connection after the headers.
struct FailingBody;

impl MessageBody for FailingBody {
    type Error = std::io::Error;

    fn size(&self) -> BodySize {
        BodySize::Stream
    }

    fn poll_next(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Bytes, Self::Error>>> {
        Poll::Ready(Some(Err(std::io::Error::other(
            "injected dropped connection",
        ))))
    }
}
