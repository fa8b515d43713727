//! The HTTP API: routes, thin handlers, authentication extractors, problem+json errors and the
//! OpenAPI document. Handlers parse, authorize, call one service function and map the result.

pub mod console;
pub mod error;
pub mod extract;
pub mod middleware;
pub mod openapi;
pub mod routes;
pub mod session_cookie;
pub mod startup;
pub mod state;

pub use startup::Application;
