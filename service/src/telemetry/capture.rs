//! The process's own warnings, errors and business events as log records: a `tracing` layer
//! that turns every WARN and ERROR event (and INFO events of the `wework::event` target) into
//! a `LogDoc` for the log shipper. Installed once per process by the binary; until then, and in
//! processes that never install it, it does nothing.

use std::sync::OnceLock;

use serde_json::{Map, Value};
use tracing::{Event, Level, Subscriber, field::Field};
use tracing_subscriber::{Layer, layer::Context};

use super::{
    logs::{LogDoc, LogKind},
    shipper::Shipper,
};

/// Target of INFO events that are worth keeping as business events.
pub const EVENT_TARGET: &str = "wework::event";

struct Sink {
    shipper: Shipper<LogDoc>,
    service: String,
}

static SINK: OnceLock<Sink> = OnceLock::new();

/// Sends captured events to `shipper` from now on (the first call wins).
pub fn install(shipper: Shipper<LogDoc>, service: &str) {
    let _ = SINK.set(Sink {
        shipper,
        service: service.to_owned(),
    });
}

#[derive(Debug, Default, Clone, Copy)]
pub struct CaptureLayer;

impl<S: Subscriber> Layer<S> for CaptureLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let Some(sink) = SINK.get() else {
            return;
        };
        let meta = event.metadata();
        let level = *meta.level();
        let wanted =
            level <= Level::WARN || (level == Level::INFO && meta.target() == EVENT_TARGET);
        // The shippers' own complaints stay on stderr: shipping them could feed a loop.
        if !wanted || meta.target().starts_with("service::telemetry") {
            return;
        }
        let mut fields = FieldVisitor::default();
        event.record(&mut fields);
        let kind = if level == Level::ERROR {
            LogKind::Error
        } else {
            LogKind::System
        };
        let mut message = fields.message.unwrap_or_default();
        // Field values (an instance's error text, say) are part of what people search for.
        for (key, value) in &fields.values {
            let text = value
                .as_str()
                .map_or_else(|| value.to_string(), str::to_owned);
            message.push_str(&format!(" {key}={text}"));
        }
        let mut doc = LogDoc::new(kind, level.as_str(), &sink.service, message);
        doc.module = Some(meta.target().to_owned());
        doc.instance_id = fields
            .values
            .get("instance.id")
            .or_else(|| fields.values.get("instance_id"))
            .and_then(Value::as_i64);
        doc.user_id = fields.values.get("user.id").and_then(Value::as_i64);
        doc.trace_id = fields
            .values
            .get("request_id")
            .and_then(Value::as_str)
            .map(str::to_owned);
        if !fields.values.is_empty() {
            doc.context = Some(Value::Object(fields.values));
        }
        sink.shipper.record(doc);
    }
}

#[derive(Default)]
struct FieldVisitor {
    message: Option<String>,
    values: Map<String, Value>,
}

impl tracing::field::Visit for FieldVisitor {
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.values.insert(field.name().to_owned(), value.into());
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.values.insert(field.name().to_owned(), value.into());
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.values.insert(field.name().to_owned(), value.into());
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message = Some(value.to_owned());
        } else {
            self.values.insert(field.name().to_owned(), value.into());
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let text = format!("{value:?}");
        if field.name() == "message" {
            self.message = Some(text);
        } else {
            self.values.insert(field.name().to_owned(), text.into());
        }
    }
}
