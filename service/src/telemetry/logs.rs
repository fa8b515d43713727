//! Log records: the app's own warnings, errors and business events (`system`, `error`), one per
//! HTTP request (`access`). One document shape for every store: Elasticsearch indexes it as is,
//! the SQL store maps it onto `system_logs`, `error_logs` and `access_logs`.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum LogKind {
    System,
    Error,
    Access,
    /// A copy of an `audit_logs` row (the SQL row stays the record).
    Audit,
}

impl LogKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::System => "system",
            Self::Error => "error",
            Self::Access => "access",
            Self::Audit => "audit",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "system" => Some(Self::System),
            "error" => Some(Self::Error),
            "access" => Some(Self::Access),
            "audit" => Some(Self::Audit),
            _ => None,
        }
    }
}

/// One log line, as stored and as searched.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LogDoc {
    /// Stable id: a re-sent document replaces itself instead of appearing twice.
    pub id: uuid::Uuid,
    #[serde(rename = "@timestamp")]
    pub timestamp: DateTime<Utc>,
    pub kind: LogKind,
    /// ERROR, WARN, INFO (access logs: by status class).
    pub level: String,
    /// Which process wrote it: api, worker or serve.
    pub service: String,
    /// The Rust module (tracing target) or the route.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub module: Option<String>,
    pub message: String,
    /// The request id, shared by every log line of one request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_id: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
    /// `audit_logs.id` of an audit copy: where shipping resumes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audit_id: Option<i64>,
    /// Structured fields of the event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<Value>,
}

impl LogDoc {
    pub fn new(kind: LogKind, level: &str, service: &str, message: String) -> Self {
        Self {
            id: uuid::Uuid::now_v7(),
            timestamp: Utc::now(),
            kind,
            level: level.to_owned(),
            service: service.to_owned(),
            module: None,
            message,
            trace_id: None,
            user_id: None,
            instance_id: None,
            ip: None,
            method: None,
            path: None,
            status: None,
            duration_ms: None,
            user_agent: None,
            audit_id: None,
            context: None,
        }
    }
}

/// Documents as newline-delimited JSON (the spool format of the SQL store).
pub fn to_ndjson(docs: &[LogDoc]) -> Vec<u8> {
    let mut body = Vec::new();
    for doc in docs {
        if serde_json::to_writer(&mut body, doc).is_ok() {
            body.push(b'\n');
        }
    }
    body
}

pub fn from_ndjson(body: &[u8]) -> Vec<LogDoc> {
    body.split(|b| *b == b'\n')
        .filter(|line| !line.is_empty())
        .filter_map(|line| serde_json::from_slice(line).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_round_trip_through_ndjson() {
        let mut doc = LogDoc::new(LogKind::Error, "ERROR", "worker", "实例连接超时".into());
        doc.instance_id = Some(7);
        doc.context = Some(serde_json::json!({"error": "timeout"}));
        let other = LogDoc::new(LogKind::Access, "INFO", "api", "GET /healthz 200".into());
        let back = from_ndjson(&to_ndjson(&[doc.clone(), other.clone()]));
        assert_eq!(back, vec![doc, other]);
    }
}
