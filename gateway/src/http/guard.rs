//! Where a request comes from, and whether a browser may make it: the client's address
//! (behind a trusted reverse proxy, the one it forwarded), and the same-origin checks that
//! stop other sites' pages from using a station's session cookie.
//!
//! - [`client_addr`] (a middleware) puts [`ClientAddr`] into every request: the peer's address,
//!   or, only when the peer is one of `--trusted-proxy`, the nearest address in
//!   `X-Forwarded-For` that is not a trusted proxy. No header is believed by default.
//! - [`cross_site_writes`] (a middleware) refuses a write (any method but GET, HEAD and
//!   OPTIONS) that a browser made from another site, when it carries no `Authorization`
//!   header: the cookie is what such a request would ride on, and sign-in itself is included.
//!   Pages of another site cannot set `Authorization`, so bearer requests need no check.
//! - [`check_origin`]: the rule both use, also applied to the station feed's WebSocket.
//!
//! A request is same-origin when its `Origin` is the gateway's own (`scheme://` + the `Host`
//! it asked for) or the configured `--public-origin`. Without `Origin`, `Sec-Fetch-Site` must
//! be `same-origin` or `none`; a client that sends neither (curl, scripts) is no browser, and
//! no other site can make a browser send a request without them.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderMap, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::ApiError;

/// Where the client is: set by [`client_addr`] on every request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr(pub IpAddr);

/// What the guards need to know of the gateway's place on the network.
#[derive(Debug, Clone, Default)]
pub struct Trust {
    /// Reverse proxies whose `X-Forwarded-For` is believed.
    pub proxies: Vec<IpAddr>,
    /// The origin browsers use when it is not `http://` + the `Host` they sent, e.g.
    /// `https://station.example.cn` behind a TLS proxy. Without a trailing slash.
    pub public_origin: Option<String>,
}

impl Trust {
    /// Checks and normalises a `--public-origin`: `http(s)://host[:port]`, nothing more.
    pub fn parse_origin(origin: &str) -> Result<String, String> {
        let url = url::Url::parse(origin)
            .map_err(|e| format!("--public-origin {origin:?} is not a URL: {e}"))?;
        let plain = matches!(url.scheme(), "http" | "https")
            && url.host_str().is_some()
            && url.path() == "/"
            && url.query().is_none()
            && url.username().is_empty();
        if !plain {
            return Err(format!(
                "--public-origin {origin:?} must be http(s)://host[:port], as a browser's Origin header shows it"
            ));
        }
        Ok(url.origin().ascii_serialization())
    }

    /// The client of a request that came from `peer` with `headers`.
    pub fn client(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        if !self.is_proxy(peer) {
            return peer;
        }
        // Proxies append: the last entries are the nearest. The first one not ours is the
        // client as our own proxies saw it; anything further left is the client's say-so.
        let forwarded = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .collect::<Vec<_>>();
        for hop in forwarded.iter().rev() {
            match hop.parse::<IpAddr>() {
                Ok(ip) if self.is_proxy(ip) => continue,
                Ok(ip) => return ip,
                // A hop we cannot read: stop at the last one we could believe.
                Err(_) => break,
            }
        }
        peer
    }

    fn is_proxy(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.proxies.iter().any(|p| p.to_canonical() == ip)
    }
}

/// Middleware: puts [`ClientAddr`] into the request (see the module header).
pub async fn client_addr(
    State(trust): State<Arc<Trust>>,
    mut req: Request,
    next: Next,
) -> Response {
    if let Some(ConnectInfo(peer)) = req.extensions().get::<ConnectInfo<SocketAddr>>().copied() {
        let client = trust.client(peer.ip(), req.headers());
        req.extensions_mut().insert(ClientAddr(client));
    }
    next.run(req).await
}

/// Whether a browser request comes from the gateway's own pages; `Err` says why not.
pub fn check_origin(trust: &Trust, headers: &HeaderMap) -> Result<(), String> {
    if let Some(origin) = headers.get(header::ORIGIN) {
        let origin = origin.to_str().unwrap_or("(not text)");
        if trust.public_origin.as_deref() == Some(origin) {
            return Ok(());
        }
        let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
        let own = origin
            .strip_prefix("http://")
            .or_else(|| origin.strip_prefix("https://"));
        return match (own, host) {
            (Some(own), Some(host)) if own.eq_ignore_ascii_case(host) => Ok(()),
            _ => Err(format!(
                "cross-site request refused: Origin {origin} is not this gateway's \
                 (set --public-origin if browsers reach it under another name)"
            )),
        };
    }
    match headers
        .get("sec-fetch-site")
        .map(|v| v.to_str().unwrap_or(""))
    {
        None | Some("same-origin" | "none") => Ok(()),
        Some(site) => Err(format!(
            "cross-site request refused: the browser says it came from a {site} page"
        )),
    }
}

/// Middleware: refuses cross-site writes that would ride on the session cookie (403).
pub async fn cross_site_writes(
    State(trust): State<Arc<Trust>>,
    req: Request,
    next: Next,
) -> Response {
    let safe = matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    if !safe && !req.headers().contains_key(header::AUTHORIZATION) {
        if let Err(why) = check_origin(&trust, req.headers()) {
            tracing::warn!(
                method = %req.method(),
                path = %req.uri().path(),
                client = ?req.extensions().get::<ClientAddr>(),
                "{why}"
            );
            return ApiError::Forbidden(why).into_response();
        }
    }
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::http::test_headers as headers;

    #[test]
    fn forwarded_for_is_believed_from_trusted_proxies_only() {
        let proxy: IpAddr = "10.0.0.2".parse().unwrap();
        let peer: IpAddr = "192.0.2.1".parse().unwrap();
        let forged = headers(&[("x-forwarded-for", "198.51.100.7")]);
        assert_eq!(Trust::default().client(peer, &forged), peer);
        let trust = Trust {
            proxies: vec![proxy, "10.0.0.3".parse().unwrap()],
            public_origin: None,
        };
        assert_eq!(trust.client(peer, &forged), peer);
        // The client's own claim (left) is skipped: the nearest untrusted hop counts.
        let chain = headers(&[
            ("x-forwarded-for", "1.1.1.1, 203.0.113.9"),
            ("x-forwarded-for", "10.0.0.3"),
        ]);
        assert_eq!(
            trust.client(proxy, &chain),
            "203.0.113.9".parse::<IpAddr>().unwrap()
        );
        assert_eq!(trust.client(proxy, &headers(&[])), proxy);
        assert_eq!(
            trust.client(proxy, &headers(&[("x-forwarded-for", "junk")])),
            proxy
        );
    }

    #[test]
    fn origins() {
        let trust = Trust {
            proxies: Vec::new(),
            public_origin: Some("https://station.example.cn".into()),
        };
        let ok = |h: &[(&'static str, &str)]| check_origin(&trust, &headers(h)).is_ok();
        assert!(ok(&[
            ("origin", "http://127.0.0.1:8080"),
            ("host", "127.0.0.1:8080")
        ]));
        assert!(ok(&[
            ("origin", "https://station.example.cn"),
            ("host", "10.0.0.5")
        ]));
        assert!(!ok(&[
            ("origin", "https://evil.example"),
            ("host", "127.0.0.1:8080")
        ]));
        assert!(!ok(&[("origin", "null"), ("host", "127.0.0.1:8080")]));
        assert!(!ok(&[
            ("origin", "http://127.0.0.1:8081"),
            ("host", "127.0.0.1:8080")
        ]));
        assert!(ok(&[("sec-fetch-site", "same-origin")]));
        assert!(!ok(&[("sec-fetch-site", "cross-site")]));
        assert!(!ok(&[("sec-fetch-site", "same-site")]));
        assert!(ok(&[]));
        assert_eq!(
            Trust::parse_origin("https://Station.example.cn/").unwrap(),
            "https://station.example.cn"
        );
        assert!(Trust::parse_origin("https://station.example.cn/console").is_err());
        assert!(Trust::parse_origin("station.example.cn").is_err());
    }
}
