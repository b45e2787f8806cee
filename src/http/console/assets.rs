//! The console's one script and one stylesheet, compiled into the binary. Their URLs
//! carry a digest of their content (`?v=`), so browsers may cache them for a year and
//! still never run a stale script after an upgrade.

use std::sync::OnceLock;

use axum::extract::Path;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

const SCRIPT: &str = include_str!("../../../templates/console/console.js");
const STYLESHEET: &str = include_str!("../../../templates/console/console.css");

/// The digest of both assets, for their URLs.
pub fn version() -> &'static str {
    static VERSION: OnceLock<String> = OnceLock::new();
    VERSION.get_or_init(|| {
        let digest = Sha256::new().chain_update(SCRIPT).chain_update(STYLESHEET).finalize();
        hex::encode(&digest[..6])
    })
}

pub async fn serve(Path(name): Path<String>) -> Response {
    let (content_type, body) = match name.as_str() {
        "console.js" => ("text/javascript; charset=utf-8", SCRIPT),
        "console.css" => ("text/css; charset=utf-8", STYLESHEET),
        _ => return (StatusCode::NOT_FOUND, "no such asset").into_response(),
    };
    ([(header::CONTENT_TYPE, content_type), (header::CACHE_CONTROL, "public, max-age=31536000, immutable")], body)
        .into_response()
}
