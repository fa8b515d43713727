//! One module per resource; `table` lists every handler once, and `startup` mounts the table.

pub mod accounts;
pub mod alerts;
pub mod audit_logs;
pub mod auth;
pub mod callbacks;
pub mod contacts;
pub mod desk;
pub mod groups;
pub mod health;
pub mod instances;
pub mod login_logs;
pub mod logs;
pub mod messages;
pub mod monitoring;

pub mod permissions;
pub mod roles;
pub mod segments;
pub mod session;
pub mod table;
pub mod tags;
pub mod tasks;
pub mod templates;

pub mod users;

use serde::Deserialize;

/// `?limit=&cursor=` shared by list endpoints that have no other filter.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// Page size, 1 to 200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<u64>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// 204 No Content.
pub fn no_content() -> actix_web::HttpResponse {
    actix_web::HttpResponse::NoContent().finish()
}
