//! One module per job; each exposes `run`, one idempotent pass, which tests can call directly.

pub mod alerts;
pub mod audit_ship;
pub mod confirm;
pub mod desk;
pub mod events;
pub mod expand;
pub mod heartbeats;
pub mod housekeeping;
pub mod schedule;
pub mod sweep;
pub mod sync;
