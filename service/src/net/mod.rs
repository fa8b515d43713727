//! Outbound HTTP: the SSRF policy every user-configured URL passes, at save time and again at
//! connect time, and the HTTP client built on it.

pub mod client;
pub mod ssrf;
