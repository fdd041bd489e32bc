//! Who sent a request: the peer's address, or, when the peer is a trusted reverse proxy,
//! the client that proxy reports.
//!
//! Forwarding headers are believed only from `trusted_proxies` (nobody by default): any
//! client can write `X-Forwarded-For: 1.2.3.4`, so believing it from everyone would let
//! anyone pick the address their rate limits are counted against. From a trusted peer the
//! client is the right-most address in the chain that is not itself a trusted proxy: every
//! hop appends what it saw, so entries left of that one were written by the client and
//! prove nothing.

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{Extensions, HeaderMap};
pub use ipnet::IpNet;

use crate::ratelimit::ip_subject;

/// The resolved client of one request, stored in the request's extensions by the edge
/// middleware. Everything that keys a limit or compares a scheme reads this, never the
/// socket's peer directly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr {
    pub ip: IpAddr,
    /// The client reached the public side over https (only a trusted proxy can say so;
    /// tidepool itself speaks plain HTTP).
    pub https: bool,
}

impl ClientAddr {
    /// The rate-limit subject for this client (IPv6 grouped by /64).
    pub fn subject(&self) -> String {
        ip_subject(self.ip)
    }

    /// The resolved client if the edge middleware ran, else the socket peer, else nothing
    /// (a router driven without a socket, as in unit tests).
    pub fn from_extensions(ext: &Extensions) -> Option<ClientAddr> {
        ext.get::<ClientAddr>().copied().or_else(|| {
            ext.get::<ConnectInfo<SocketAddr>>().map(|c| ClientAddr {
                ip: c.0.ip().to_canonical(),
                https: false,
            })
        })
    }
}

/// Extracts the resolved client; without any address the unspecified address stands in,
/// so such requests share one bucket rather than escaping the limits.
impl<S: Send + Sync> FromRequestParts<S> for ClientAddr {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Infallible> {
        Ok(
            ClientAddr::from_extensions(&parts.extensions).unwrap_or(ClientAddr {
                ip: IpAddr::from([0, 0, 0, 0]),
                https: false,
            }),
        )
    }
}

/// Parses one `trusted_proxies` entry: an address (`10.0.0.7`, `::1`) or a range in CIDR
/// notation (`10.0.0.0/8`, `fd00::/8`).
pub fn parse_trusted(s: &str) -> Result<IpNet, String> {
    let s = s.trim();
    if let Ok(net) = s.parse::<IpNet>() {
        return Ok(net.trunc());
    }
    s.parse::<IpAddr>()
        .map(IpNet::from)
        .map_err(|_| format!("{s:?} is neither an IP address nor a CIDR range (like 10.0.0.0/8)"))
}

fn is_trusted(ip: IpAddr, trusted: &[IpNet]) -> bool {
    trusted.iter().any(|n| n.contains(&ip))
}

/// Resolves the client of a request that arrived from `peer`.
///
/// `X-Forwarded-For` is read when present, RFC 7239 `Forwarded` otherwise: a proxy that
/// writes one of them passes the other through from the client untouched, so the one it
/// writes must win. Both nginx and Caddy write `X-Forwarded-For` (docs/DEPLOY.md).
pub fn resolve(peer: IpAddr, headers: &HeaderMap, trusted: &[IpNet]) -> ClientAddr {
    let peer = peer.to_canonical();
    if !is_trusted(peer, trusted) {
        return ClientAddr {
            ip: peer,
            https: false,
        };
    }
    let proto = last_value(headers, "x-forwarded-proto");
    // Bytes, not `&str`: a header line a client stuffed with non-ASCII bytes must still
    // count, as garbage hops that end the walk, and must never make the whole header
    // vanish (which would hand the decision to a `Forwarded` header the client wrote).
    let xff: Vec<String> = headers
        .get_all("x-forwarded-for")
        .iter()
        .flat_map(|v| v.as_bytes().split(|b| *b == b','))
        .map(|h| String::from_utf8_lossy(h).trim().to_owned())
        .collect();
    if headers.contains_key("x-forwarded-for") {
        let hops: Vec<Option<IpAddr>> = xff.iter().map(|h| parse_node(h)).collect();
        let (ip, _) = pick(peer, &hops, trusted);
        return ClientAddr {
            ip,
            https: proto.is_some_and(|p| p.eq_ignore_ascii_case("https")),
        };
    }
    let elements = forwarded_elements(headers);
    if !elements.is_empty() {
        let hops: Vec<Option<IpAddr>> = elements
            .iter()
            .map(|e| e.for_node.as_deref().and_then(parse_node))
            .collect();
        let (ip, at) = pick(peer, &hops, trusted);
        // The scheme that element's hop saw; without one, X-Forwarded-Proto if sent.
        let element_proto = at.and_then(|i| elements[i].proto.as_deref());
        let https = element_proto
            .or(proto)
            .is_some_and(|p| p.eq_ignore_ascii_case("https"));
        return ClientAddr { ip, https };
    }
    ClientAddr {
        ip: peer,
        https: proto.is_some_and(|p| p.eq_ignore_ascii_case("https")),
    }
}

/// Walks the chain from the right: trusted hops are skipped, the first untrusted one is
/// the client. An entry that is not an address (`unknown`, an obfuscated name, garbage)
/// ends the walk at the last trusted hop, which is then the best address known. Returns
/// the address and the index of the entry it came from (None: the peer itself).
fn pick(peer: IpAddr, hops: &[Option<IpAddr>], trusted: &[IpNet]) -> (IpAddr, Option<usize>) {
    let mut best = (peer, None);
    for (i, hop) in hops.iter().enumerate().rev() {
        match hop {
            Some(ip) => {
                best = (*ip, Some(i));
                if !is_trusted(*ip, trusted) {
                    break;
                }
            }
            None => break,
        }
    }
    best
}

/// The right-most comma-separated value of a header (the one the nearest proxy wrote).
fn last_value<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .rfind(|v| !v.is_empty())
}

/// An address as forwarding headers write it: `192.0.2.1`, `192.0.2.1:4711`,
/// `2001:db8::1`, `[2001:db8::1]`, `[2001:db8::1]:4711`.
fn parse_node(s: &str) -> Option<IpAddr> {
    let s = s.trim().trim_matches('"');
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Some(ip.to_canonical());
    }
    if let Ok(sa) = s.parse::<SocketAddr>() {
        return Some(sa.ip().to_canonical());
    }
    let inner = s.strip_prefix('[')?.split(']').next()?;
    inner.parse::<IpAddr>().ok().map(|ip| ip.to_canonical())
}

struct Element {
    for_node: Option<String>,
    proto: Option<String>,
}

/// The elements of every `Forwarded` header, in order (RFC 7239 section 4: elements are
/// separated by commas, pairs by semicolons, values may be quoted strings).
fn forwarded_elements(headers: &HeaderMap) -> Vec<Element> {
    let mut out = Vec::new();
    for value in headers
        .get_all("forwarded")
        .iter()
        .map(|v| String::from_utf8_lossy(v.as_bytes()))
    {
        for element in split_unquoted(&value, ',') {
            let mut e = Element {
                for_node: None,
                proto: None,
            };
            for pair in split_unquoted(element, ';') {
                let Some((k, v)) = pair.split_once('=') else {
                    continue;
                };
                let v = v.trim().trim_matches('"').to_owned();
                match k.trim().to_ascii_lowercase().as_str() {
                    "for" => e.for_node = Some(v),
                    "proto" => e.proto = Some(v),
                    _ => {}
                }
            }
            out.push(e);
        }
    }
    out
}

/// Splits on `sep` outside double quotes.
fn split_unquoted(s: &str, sep: char) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut quoted = false;
    let mut start = 0;
    for (i, c) in s.char_indices() {
        match c {
            '"' => quoted = !quoted,
            c if c == sep && !quoted => {
                parts.push(&s[start..i]);
                start = i + c.len_utf8();
            }
            _ => {}
        }
    }
    parts.push(&s[start..]);
    parts
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn untrusted_peers_are_taken_at_their_word_only_for_their_own_address() {
        let h = headers(&[
            ("x-forwarded-for", "203.0.113.9"),
            ("x-forwarded-proto", "https"),
        ]);
        let c = resolve(ip("198.51.100.4"), &h, &[]);
        assert_eq!(c.ip, ip("198.51.100.4"));
        assert!(!c.https);
    }

    #[test]
    fn the_right_most_untrusted_hop_is_the_client() {
        let trusted = [
            parse_trusted("127.0.0.1").unwrap(),
            parse_trusted("10.0.0.0/8").unwrap(),
        ];
        // The client wrote the first entry itself; the proxies appended the rest.
        let h = headers(&[
            ("x-forwarded-for", "6.6.6.6, 203.0.113.9"),
            ("x-forwarded-for", "10.1.2.3"),
            ("x-forwarded-proto", "https"),
        ]);
        let c = resolve(ip("127.0.0.1"), &h, &trusted);
        assert_eq!(c.ip, ip("203.0.113.9"));
        assert!(c.https);
        // Every hop trusted: the left-most one is the best there is.
        let h = headers(&[("x-forwarded-for", "10.0.0.1, 10.0.0.2")]);
        assert_eq!(resolve(ip("127.0.0.1"), &h, &trusted).ip, ip("10.0.0.1"));
        // Garbage where the client should be: the nearest trusted hop.
        let h = headers(&[("x-forwarded-for", "203.0.113.9, nonsense, 10.0.0.2")]);
        assert_eq!(resolve(ip("127.0.0.1"), &h, &trusted).ip, ip("10.0.0.2"));
        let h = headers(&[("x-forwarded-for", "nonsense")]);
        assert_eq!(resolve(ip("127.0.0.1"), &h, &trusted).ip, ip("127.0.0.1"));
    }

    #[test]
    fn a_non_ascii_forwarded_for_line_never_hands_the_choice_to_forwarded() {
        let trusted = [parse_trusted("127.0.0.1").unwrap()];
        // nginx appends the real address to the client's own (non-ASCII) line.
        let mut h = HeaderMap::new();
        h.append(
            "x-forwarded-for",
            HeaderValue::from_bytes(b"\x80\xff, 203.0.113.9").unwrap(),
        );
        h.append("forwarded", HeaderValue::from_static("for=7.7.7.7"));
        assert_eq!(resolve(ip("127.0.0.1"), &h, &trusted).ip, ip("203.0.113.9"));
        // Only garbage: the proxy itself, never the client's Forwarded claim.
        let mut h = HeaderMap::new();
        h.append("x-forwarded-for", HeaderValue::from_bytes(b"\x80").unwrap());
        h.append("forwarded", HeaderValue::from_static("for=7.7.7.7"));
        assert_eq!(resolve(ip("127.0.0.1"), &h, &trusted).ip, ip("127.0.0.1"));
    }

    #[test]
    fn forwarded_is_read_when_x_forwarded_for_is_absent() {
        let trusted = [parse_trusted("::1").unwrap()];
        let h = headers(&[(
            "forwarded",
            r#"for=192.0.2.60;proto=http, for="[2001:db8:cafe::17]:4711";proto=https;by=_p"#,
        )]);
        let c = resolve(ip("::1"), &h, &trusted);
        assert_eq!(c.ip, ip("2001:db8:cafe::17"));
        assert!(c.https);
        // X-Forwarded-For wins over Forwarded when both are present.
        let h = headers(&[
            ("forwarded", "for=192.0.2.60"),
            ("x-forwarded-for", "198.51.100.1"),
        ]);
        assert_eq!(resolve(ip("::1"), &h, &trusted).ip, ip("198.51.100.1"));
    }

    #[test]
    fn addresses_and_ranges_parse() {
        assert_eq!(
            parse_trusted("10.1.2.3/8").unwrap(),
            "10.0.0.0/8".parse::<IpNet>().unwrap()
        );
        assert!(parse_trusted("::1").unwrap().contains(&ip("::1")));
        assert!(parse_trusted("proxy.internal").is_err());
        assert_eq!(parse_node("[::ffff:10.0.0.1]:80"), Some(ip("10.0.0.1")));
        assert_eq!(parse_node("192.0.2.1:4711"), Some(ip("192.0.2.1")));
        assert_eq!(parse_node("unknown"), None);
    }
}
