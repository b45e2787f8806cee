//! What every console response and request goes through: security headers out, and a
//! same-origin check on every state-changing request in (docs/AUTH.md, "The console").

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::pages::error_page;
use crate::http::AppState;

/// No inline script or style, nothing from another origin, no framing, forms post only
/// back here.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// Adds the security headers to every console response. Pages are private (`no-store`,
/// so neither a cache nor the Back button after sign-out shows them); assets set their
/// own long cache lifetime and keep it.
pub async fn security_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CONTENT_SECURITY_POLICY));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.entry(header::CACHE_CONTROL).or_insert(HeaderValue::from_static("no-store"));
    response
}

/// Refuses (403) a state-changing request that a browser did not send from this origin:
/// a cross-site form post (CSRF), including one to the login form.
pub async fn same_origin_posts(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let safe = matches!(*request.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    if safe || is_same_origin(request.headers(), &state.settings.public_url) {
        return next.run(request).await;
    }
    error_page(
        StatusCode::FORBIDDEN,
        "This form was sent from another site, so it was refused. Reload the page and try again.",
    )
    .into_response()
}

/// Whether the browser says the request comes from this origin: `Sec-Fetch-Site:
/// same-origin` when the browser sends it (every current one does); otherwise an
/// `Origin` equal to the origin of `ALEXANDRIA_PUBLIC_URL`, or to the origin the request
/// was addressed to (`Host`), so a console reached at another address of the same
/// server (127.0.0.1 on the machine itself) works. A request with neither header is
/// refused: browsers send `Origin` on every POST.
fn is_same_origin(headers: &HeaderMap, public_url: &str) -> bool {
    if let Some(site) = headers.get("sec-fetch-site") {
        return site.as_bytes() == b"same-origin";
    }
    let Some(origin) = headers.get(header::ORIGIN).and_then(|value| value.to_str().ok()) else {
        return false;
    };
    if public_origin(public_url).is_some_and(|public| public == origin) {
        return true;
    }
    let authority = origin.strip_prefix("http://").or_else(|| origin.strip_prefix("https://"));
    let host = headers.get(header::HOST).and_then(|value| value.to_str().ok());
    matches!((authority, host), (Some(authority), Some(host)) if authority.eq_ignore_ascii_case(host))
}

/// `scheme://host[:port]` of a URL, as browsers write it in `Origin`.
pub fn public_origin(public_url: &str) -> Option<String> {
    let url = reqwest::Url::parse(public_url).ok()?;
    let origin = url.origin();
    origin.is_tuple().then(|| origin.ascii_serialization())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.insert(*name, HeaderValue::from_static(value));
        }
        headers
    }

    const PUBLIC: &str = "https://gate.example.com/";

    #[test]
    fn a_same_origin_fetch_is_allowed_and_any_other_site_refused() {
        assert!(is_same_origin(&headers(&[("sec-fetch-site", "same-origin")]), PUBLIC));
        for site in ["same-site", "cross-site", "none"] {
            let with_origin = headers(&[("sec-fetch-site", site), ("origin", "https://gate.example.com")]);
            assert!(!is_same_origin(&with_origin, PUBLIC), "{site}");
        }
    }

    #[test]
    fn without_fetch_metadata_the_origin_must_be_ours() {
        assert!(is_same_origin(&headers(&[("origin", "https://gate.example.com")]), PUBLIC));
        assert!(is_same_origin(&headers(&[("origin", "http://127.0.0.1:8080"), ("host", "127.0.0.1:8080")]), PUBLIC));
        assert!(!is_same_origin(&headers(&[("origin", "http://evil.example"), ("host", "127.0.0.1:8080")]), PUBLIC));
        assert!(!is_same_origin(&headers(&[("origin", "null"), ("host", "127.0.0.1:8080")]), PUBLIC));
        assert!(!is_same_origin(&headers(&[("host", "127.0.0.1:8080")]), PUBLIC));
    }

    #[test]
    fn the_public_origin_drops_path_and_default_port() {
        assert_eq!(public_origin("https://gate.example.com:443/base/").as_deref(), Some("https://gate.example.com"));
        assert_eq!(public_origin("http://127.0.0.1:8080").as_deref(), Some("http://127.0.0.1:8080"));
        assert_eq!(public_origin("not a url"), None);
    }
}
