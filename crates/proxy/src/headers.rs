//! Header rules for proxied requests and responses.
//!
//! Hop-by-hop headers (RFC 9110 §7.6.1) describe one connection and never cross the gateway.
//! The forwarding headers tell the upstream who the client was: `X-Forwarded-For` and
//! `Forwarded` (RFC 7239) are appended to, so a chain of proxies stays visible, while
//! `X-Forwarded-Proto` and `X-Forwarded-Host` are set to what this gateway saw.

use std::net::IpAddr;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

/// Headers that are always connection-specific.
const HOP_BY_HOP: [HeaderName; 8] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
];

pub(crate) const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");

/// Removes hop-by-hop headers, including any header the `Connection` header names, and
/// `Upgrade` (a WebSocket upgrade is handled by its own integration, never passed through).
///
/// `TE: trailers` survives: it is end-to-end in meaning (the client accepts trailers), and gRPC
/// over HTTP/2 requires it (RFC 9113 §8.2.2 allows exactly this value).
pub(crate) fn remove_hop_by_hop(headers: &mut HeaderMap) {
    // Most messages carry none of these: one pass over the names (comparisons of standard
    // header names are cheap) saves hashing every hop-by-hop name into the map to remove it.
    let any = headers
        .keys()
        .any(|name| HOP_BY_HOP.contains(name) || name == header::UPGRADE);
    if !any {
        return;
    }
    let accepts_trailers = headers.get_all(header::TE).iter().any(|value| {
        value.to_str().is_ok_and(|v| {
            v.split(',')
                .any(|t| t.trim().eq_ignore_ascii_case("trailers"))
        })
    });
    // Names listed in Connection are hop-by-hop too; collect them before removing Connection.
    let listed: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in listed {
        headers.remove(name);
    }
    for name in &HOP_BY_HOP {
        headers.remove(name);
    }
    headers.remove(header::UPGRADE);
    if accepts_trailers {
        headers.insert(header::TE, HeaderValue::from_static("trailers"));
    }
}

/// What the forwarding headers say about one client connection, computed once per connection.
#[derive(Debug)]
pub(crate) struct ClientForwarding {
    /// The client address as header text.
    ip: HeaderValue,
    /// `for=…;proto=…`, the start of this hop's `Forwarded` element.
    element: String,
    proto: HeaderValue,
}

impl ClientForwarding {
    pub(crate) fn new(client: IpAddr, tls: bool) -> Self {
        let proto = if tls { "https" } else { "http" };
        // RFC 7239 §6: IPv6 addresses are bracketed and the node quoted.
        let node = match client {
            IpAddr::V4(v4) => v4.to_string(),
            IpAddr::V6(v6) => format!("\"[{v6}]\""),
        };
        let ip = HeaderValue::from_str(&client.to_string())
            .unwrap_or_else(|_| HeaderValue::from_static("unknown"));
        Self {
            ip,
            element: format!("for={node};proto={proto}"),
            proto: HeaderValue::from_static(proto),
        }
    }
}

/// Appends `addition` to a comma-separated header, or sets it when absent or blank.
fn append_list(headers: &mut HeaderMap, name: HeaderName, addition: &[u8]) {
    let previous = headers
        .get(&name)
        .map(HeaderValue::as_bytes)
        .filter(|v| !v.trim_ascii().is_empty());
    let mut value = Vec::with_capacity(previous.map_or(0, |p| p.len() + 2) + addition.len());
    if let Some(previous) = previous {
        value.extend_from_slice(previous);
        value.extend_from_slice(b", ");
    }
    value.extend_from_slice(addition);
    if let Ok(value) = HeaderValue::from_maybe_shared(bytes::Bytes::from(value)) {
        headers.insert(name, value);
    }
}

/// Sets the forwarding headers on a request going upstream.
pub(crate) fn add_forwarded(
    headers: &mut HeaderMap,
    client: &ClientForwarding,
    host: Option<&HeaderValue>,
) {
    if headers.contains_key(&X_FORWARDED_FOR) {
        append_list(headers, X_FORWARDED_FOR, client.ip.as_bytes());
    } else {
        headers.insert(X_FORWARDED_FOR, client.ip.clone());
    }
    headers.insert(X_FORWARDED_PROTO, client.proto.clone());
    match host {
        Some(host) => {
            headers.insert(X_FORWARDED_HOST, host.clone());
        }
        None => {
            headers.remove(X_FORWARDED_HOST);
        }
    }

    let quotable = |h: &&HeaderValue| {
        h.as_bytes()
            .iter()
            .all(|&b| b.is_ascii_graphic() && b != b'"' && b != b'\\')
    };
    let mut element = Vec::with_capacity(client.element.len() + 64);
    element.extend_from_slice(client.element.as_bytes());
    if let Some(host) = host.filter(quotable) {
        element.extend_from_slice(b";host=\"");
        element.extend_from_slice(host.as_bytes());
        element.push(b'"');
    }
    append_list(headers, header::FORWARDED, &element);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_and_connection_listed_headers_are_removed() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, x-secret"),
        );
        headers.insert("x-secret", HeaderValue::from_static("1"));
        headers.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        headers.insert(
            header::TRANSFER_ENCODING,
            HeaderValue::from_static("chunked"),
        );
        headers.insert(header::TE, HeaderValue::from_static("deflate"));
        headers.insert(header::UPGRADE, HeaderValue::from_static("h2c"));
        headers.insert("x-kept", HeaderValue::from_static("1"));
        remove_hop_by_hop(&mut headers);
        assert_eq!(headers.len(), 1);
        assert!(headers.contains_key("x-kept"));
    }

    #[test]
    fn te_trailers_is_kept_for_grpc() {
        let mut headers = HeaderMap::new();
        headers.insert(header::TE, HeaderValue::from_static("gzip, trailers"));
        remove_hop_by_hop(&mut headers);
        assert_eq!(headers[header::TE], "trailers");
        let mut headers = HeaderMap::new();
        headers.insert(header::TE, HeaderValue::from_static("gzip"));
        remove_hop_by_hop(&mut headers);
        assert!(!headers.contains_key(header::TE));
    }

    #[test]
    fn forwarded_headers_append_to_a_chain() {
        let mut headers = HeaderMap::new();
        headers.insert(X_FORWARDED_FOR, HeaderValue::from_static("203.0.113.7"));
        headers.insert(
            header::FORWARDED,
            HeaderValue::from_static("for=203.0.113.7"),
        );
        headers.insert(X_FORWARDED_PROTO, HeaderValue::from_static("spoofed"));
        let host = HeaderValue::from_static("api.example.com");
        add_forwarded(
            &mut headers,
            &ClientForwarding::new("::1".parse().unwrap(), true),
            Some(&host),
        );
        assert_eq!(headers[X_FORWARDED_FOR], "203.0.113.7, ::1");
        assert_eq!(headers[X_FORWARDED_PROTO], "https");
        assert_eq!(headers[X_FORWARDED_HOST], "api.example.com");
        assert_eq!(
            headers[header::FORWARDED],
            "for=203.0.113.7, for=\"[::1]\";proto=https;host=\"api.example.com\""
        );
    }

    #[test]
    fn first_proxy_starts_the_chain() {
        let mut headers = HeaderMap::new();
        add_forwarded(
            &mut headers,
            &ClientForwarding::new("127.0.0.1".parse().unwrap(), false),
            None,
        );
        assert_eq!(headers[X_FORWARDED_FOR], "127.0.0.1");
        assert_eq!(headers[header::FORWARDED], "for=127.0.0.1;proto=http");
        assert!(!headers.contains_key(X_FORWARDED_HOST));
    }
}
