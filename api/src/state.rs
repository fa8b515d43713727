//! Shared application state handed to handlers.

use service::Context;

#[derive(Clone, Debug)]
pub struct AppState {
    pub ctx: Context,
}
