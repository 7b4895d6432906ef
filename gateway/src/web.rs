//! The web app (`web/` in the repository), compiled into the binary so a gateway is one file to
//! deploy and a page can never be served from another version than the API it talks to. Plain
//! HTML/CSS/JS modules: no build step, nothing fetched from a CDN.
//!
//! The pages route by the URL fragment (`/#/shop`), so `/` is the only document; every other path
//! is an asset by name. The security headers keep the app to its own origin (scripts, styles,
//! fetches and the WebSocket) and out of frames.

use axum::{
    extract::State,
    http::{HeaderValue, Method, StatusCode, Uri, header},
    response::{IntoResponse, Response},
};
use sagaway_common::http::Problem;

use crate::Gateway;

/// Every file of `web/`: the path it is served at, and its content. A test checks that the list and
/// the directory agree.
pub const FILES: &[(&str, &str)] = &[
    ("/index.html", include_str!("../../web/index.html")),
    ("/style.css", include_str!("../../web/style.css")),
    ("/js/main.js", include_str!("../../web/js/main.js")),
    ("/js/api.js", include_str!("../../web/js/api.js")),
    ("/js/live.js", include_str!("../../web/js/live.js")),
    ("/js/ui.js", include_str!("../../web/js/ui.js")),
    ("/js/auth.js", include_str!("../../web/js/auth.js")),
    ("/js/shop.js", include_str!("../../web/js/shop.js")),
    ("/js/bank.js", include_str!("../../web/js/bank.js")),
    ("/js/console.js", include_str!("../../web/js/console.js")),
];

/// Only the app itself: scripts, styles and connections (fetch, WebSocket) to this origin.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; \
                   base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

fn content_type(path: &str) -> &'static str {
    match path.rsplit('.').next() {
        Some("html") => "text/html; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("js") => "text/javascript; charset=utf-8",
        _ => "application/octet-stream",
    }
}

/// The file at `path` (`/` is the app's page), if there is one.
pub fn lookup(path: &str) -> Option<(&'static str, &'static str)> {
    let path = if path == "/" { "/index.html" } else { path };
    FILES.iter().find(|(p, _)| *p == path).map(|(p, body)| (content_type(p), *body))
}

/// Everything that is neither `/api/…` nor the gateway's own routes: a file of the app, or 404.
pub async fn serve(State(_): State<Gateway>, method: Method, uri: Uri) -> Response {
    if method != Method::GET && method != Method::HEAD {
        return Problem::new(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", format!("{method} is not allowed on {}", uri.path())).into_response();
    }
    let Some((kind, body)) = lookup(uri.path()) else {
        return Problem::new(StatusCode::NOT_FOUND, "not_found", format!("nothing at {}", uri.path())).into_response();
    };
    let mut res = body.into_response();
    let h = res.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    // Compiled in: a new gateway is a new app, so the browser revalidates rather than mixing versions.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_file_of_the_web_directory_is_served_and_nothing_else() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../web");
        let mut on_disk = Vec::new();
        let mut dirs = vec![root.clone()];
        while let Some(dir) = dirs.pop() {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    dirs.push(path);
                } else {
                    on_disk.push(format!("/{}", path.strip_prefix(&root).unwrap().to_string_lossy()));
                }
            }
        }
        on_disk.sort();
        let mut served: Vec<String> = FILES.iter().map(|(p, _)| p.to_string()).collect();
        served.sort();
        assert_eq!(served, on_disk, "gateway/src/web.rs FILES must list exactly the files of web/");
    }

    #[test]
    fn the_root_is_the_page_and_types_follow_the_extension() {
        assert_eq!(lookup("/").unwrap().0, "text/html; charset=utf-8");
        assert_eq!(lookup("/js/main.js").unwrap().0, "text/javascript; charset=utf-8");
        assert_eq!(lookup("/style.css").unwrap().0, "text/css; charset=utf-8");
        assert!(lookup("/../Cargo.toml").is_none());
        assert!(lookup("/js/").is_none());
    }
}
