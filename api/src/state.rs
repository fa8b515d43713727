//! Shared application state handed to handlers.

use service::Context;

use service::stream_slots::StreamSlots;

#[derive(Clone, Debug)]
pub struct AppState {
    pub ctx: Context,
    /// Open progress streams per user (capped).
    pub streams: StreamSlots,
}

impl AppState {
    /// Console cookies are `Secure` when the console is served over HTTPS (`server.public_url`).
    pub fn secure_cookies(&self) -> bool {
        self.ctx.settings.server.public_url.starts_with("https://")
    }
}
