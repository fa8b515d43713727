//! Outbound HTTP: the SSRF policy every user-configured URL passes, at save time and again at
//! connect time, the HTTP client built on it, and the redaction of secrets from URLs it reports.

pub mod client;
pub mod redact;
pub mod ssrf;
