//! Who is calling: client address (trusting `X-Forwarded-For` only from configured proxies),
//! user agent and request id.

use std::net::IpAddr;

use actix_web::{HttpMessage, HttpRequest};
use service::auth::actor::RequestMeta;

use crate::middleware::RequestContext;

pub fn request_meta(req: &HttpRequest, trusted_proxies: &[IpAddr]) -> RequestMeta {
    let peer = req.peer_addr().map(|a| a.ip());
    let ip = match peer {
        Some(peer) if trusted_proxies.contains(&peer) => {
            forwarded_client(req, trusted_proxies).unwrap_or(peer)
        }
        Some(peer) => peer,
        None => IpAddr::from([127, 0, 0, 1]),
    };
    RequestMeta {
        ip: ip.to_string(),
        user_agent: req
            .headers()
            .get(actix_web::http::header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.chars().take(512).collect()),
        request_id: req
            .extensions()
            .get::<RequestContext>()
            .map(|c| c.request_id.clone()),
    }
}

/// The right-most `X-Forwarded-For` hop that is not one of our proxies: the first address an
/// attacker could not have written themselves.
fn forwarded_client(req: &HttpRequest, trusted: &[IpAddr]) -> Option<IpAddr> {
    let header = req.headers().get("x-forwarded-for")?.to_str().ok()?;
    header
        .rsplit(',')
        .filter_map(|hop| hop.trim().parse::<IpAddr>().ok())
        .find(|ip| !trusted.contains(ip))
}
