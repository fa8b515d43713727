//! Serves the embedded console (`web/dist`, see `build.rs`) at `/`: files by path, gzip when the
//! client takes it, hashed assets cached for good, and `index.html` for the console's own routes
//! (`/tasks/12`), which only the browser-side router knows.

use actix_web::{
    HttpRequest, HttpResponse,
    http::{Method, header},
};

struct Asset {
    path: &'static str,
    raw: &'static [u8],
    gzip: Option<&'static [u8]>,
}

include!(concat!(env!("OUT_DIR"), "/console_assets.rs"));

/// What the console's pages may load: their own scripts, styles, fonts and API, images also
/// as `data:`/`blob:` URLs (QR codes), nothing inline, no framing.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
    style-src 'self'; img-src 'self' data: blob:; font-src 'self' data:; connect-src 'self'; \
    object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// The console's answer for a GET outside the API, or `None` when it has no such file.
pub fn serve(req: &HttpRequest) -> Option<HttpResponse> {
    if !matches!(*req.method(), Method::GET | Method::HEAD) {
        return None;
    }
    let path = req.path().trim_start_matches('/');
    if path.starts_with("api/") || path == "api" {
        return None;
    }
    let (asset, page) = match find(path) {
        Some(asset) => (asset, path.is_empty() || path == "index.html"),
        // A route of the console's router: no extension in the last segment.
        None if !path.rsplit('/').next().unwrap_or_default().contains('.') => {
            (find("index.html")?, true)
        }
        None => return None,
    };
    let gzip_ok = req
        .headers()
        .get(header::ACCEPT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|e| e.trim().starts_with("gzip")));
    let mut response = HttpResponse::Ok();
    response
        .content_type(content_type(asset.path))
        .insert_header((header::VARY, "Accept-Encoding"))
        .insert_header((header::CACHE_CONTROL, cache_control(asset.path, page)));
    if page {
        response.insert_header((header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY));
    }
    Some(match asset.gzip {
        Some(gzip) if gzip_ok => response
            .insert_header((header::CONTENT_ENCODING, "gzip"))
            .body(gzip),
        _ => response.body(asset.raw),
    })
}

fn find(path: &str) -> Option<&'static Asset> {
    let path = if path.is_empty() { "index.html" } else { path };
    ASSETS.iter().find(|a| a.path == path)
}

/// Vite names built assets by content hash, so they never change; the page itself always may.
fn cache_control(path: &str, page: bool) -> &'static str {
    if !page && path.starts_with("assets/") {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    }
}

fn content_type(path: &str) -> &'static str {
    match path.rsplit('.').next().unwrap_or_default() {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "woff2" => "font/woff2",
        "woff" => "font/woff",
        "ttf" => "font/ttf",
        "json" => "application/json",
        "txt" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashed_assets_are_cached_and_pages_are_not() {
        assert_eq!(
            cache_control("assets/index-3f2a.js", false),
            "public, max-age=31536000, immutable"
        );
        assert_eq!(cache_control("index.html", true), "no-cache");
        assert_eq!(cache_control("favicon.svg", false), "no-cache");
    }

    #[test]
    fn types_follow_extensions() {
        assert_eq!(
            content_type("assets/a.js"),
            "text/javascript; charset=utf-8"
        );
        assert_eq!(content_type("index.html"), "text/html; charset=utf-8");
        assert_eq!(content_type("x.unknown"), "application/octet-stream");
    }
}
