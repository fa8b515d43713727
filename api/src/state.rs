//! Shared application state handed to handlers.

use service::Context;

use service::stream_slots::StreamSlots;

#[derive(Clone, Debug)]
pub struct AppState {
    pub ctx: Context,
    /// Open progress streams per user (capped).
    pub streams: StreamSlots,
}
