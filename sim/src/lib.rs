//! The WeCom / instance simulator: a real HTTP server speaking the agent protocol and the WeCom
//! API subset the drivers use, for tests, benchmarks and demos.
//!
//! Not built yet: it arrives with the instance drivers (see docs/roadmap.md). The crate exists so
//! the workspace has its final shape and nothing of ours depends on it.
