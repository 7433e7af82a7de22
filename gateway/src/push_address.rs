//! Where the gateway may send a Web Push: only to push services on the public internet.
//!
//! A push endpoint is a URL a volunteer's browser hands over, so it is input, and the gateway
//! POSTs to it on every dispatch. Left unchecked, an endpoint naming a machine inside the
//! station's network (a router's admin page, a cloud metadata service, the gateway itself)
//! would make the gateway a tool for reaching it. Three checks stand in the way:
//! - at registration, [`check_endpoint`] refuses a host that is an address of such a range, or
//!   a name that can only mean this machine or the local network (`localhost`, a single
//!   label);
//! - at connection, [`PublicOnly`] resolves names for the HTTP client itself and keeps only
//!   public addresses, so a name that resolves (or later re-resolves) inward is refused
//!   before any packet is sent;
//! - an endpoint that is an address (which no resolver sees) is checked again before each
//!   push, by [`check_endpoint`].
//!
//! `--push-allow-loopback` (tests with a local push-service emulator) lets loopback through,
//! and nothing else.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::Url;

/// Why `ip` is not an address of the public internet, if it is not.
pub fn refused_ip(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => refused_v4(v4),
        IpAddr::V6(v6) => refused_v6(v6),
    }
}

fn refused_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, c, _] = ip.octets();
    Some(match (a, b, c) {
        _ if ip.is_unspecified() || a == 0 => "an unspecified address (0.0.0.0/8)",
        _ if ip.is_loopback() => "a loopback address (127.0.0.0/8)",
        _ if ip.is_private() => "a private address (10/8, 172.16/12, 192.168/16)",
        _ if ip.is_link_local() => "a link-local address (169.254/16)",
        (100, 64..=127, _) => "a carrier-grade NAT address (100.64/10)",
        (192, 0, 0) => "an IETF protocol address (192.0.0/24)",
        (192, 0, 2) | (198, 51, 100) | (203, 0, 113) => "a documentation address",
        (198, 18..=19, _) => "a benchmarking address (198.18/15)",
        _ if ip.is_multicast() => "a multicast address",
        _ if a >= 240 => "a reserved or broadcast address (240/4)",
        _ => return None,
    })
}

fn refused_v6(ip: Ipv6Addr) -> Option<&'static str> {
    // An IPv4 address carried in an IPv6 one is judged as the IPv4 address it reaches.
    if let Some(v4) = ip.to_ipv4_mapped() {
        return refused_v4(v4);
    }
    let s = ip.segments();
    Some(match s {
        _ if ip.is_unspecified() => "an unspecified address (::)",
        _ if ip.is_loopback() => "a loopback address (::1)",
        [0, 0, 0, 0, 0, 0, _, _] => "an IPv4-compatible address (::/96)",
        [0x64, 0xff9b, 0, 0, 0, 0, _, _] => {
            let v4 = Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
            return refused_v4(v4);
        }
        [0x2002, ..] => "a 6to4 address (2002::/16)",
        [0x2001, 0xdb8, ..] => "a documentation address (2001:db8::/32)",
        [a, ..] if a & 0xfe00 == 0xfc00 => "a unique local address (fc00::/7)",
        [a, ..] if a & 0xffc0 == 0xfe80 => "a link-local address (fe80::/10)",
        [a, ..] if a & 0xffc0 == 0xfec0 => "a site-local address (fec0::/10)",
        [a, ..] if a & 0xff00 == 0xff00 => "a multicast address (ff00::/8)",
        _ => return None,
    })
}

/// Whether `ip` is a loopback address (also in its IPv4-mapped IPv6 form).
fn is_loopback(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback(),
        IpAddr::V6(v6) => {
            v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
    }
}

/// Whether an address may be sent pushes: public, or loopback when `allow_loopback`.
fn allowed(ip: IpAddr, allow_loopback: bool) -> Result<(), &'static str> {
    match refused_ip(ip) {
        None => Ok(()),
        Some(_) if allow_loopback && is_loopback(ip) => Ok(()),
        Some(why) => Err(why),
    }
}

/// Checks an endpoint's scheme and host: `https` to a public address or to a name that may be
/// one; `http` or `https` on loopback only with `allow_loopback`. The reason when not.
pub fn check_endpoint(url: &Url, allow_loopback: bool) -> Result<(), String> {
    let host = url.host().ok_or("the endpoint has no host")?;
    let ip = match host {
        url::Host::Ipv4(v4) => Some(IpAddr::V4(v4)),
        url::Host::Ipv6(v6) => Some(IpAddr::V6(v6)),
        url::Host::Domain(_) => None,
    };
    let loopback = match (ip, &host) {
        (Some(ip), _) => is_loopback(ip),
        (None, url::Host::Domain(name)) => loopback_name(name),
        (None, _) => false,
    };
    match url.scheme() {
        "https" => {}
        "http" if loopback && allow_loopback => {}
        _ => return Err("the endpoint must be an https URL of a push service".into()),
    }
    match (ip, host) {
        (Some(ip), _) => allowed(ip, allow_loopback)
            .map_err(|why| format!("the endpoint's host {ip} is {why}, not a push service")),
        (None, url::Host::Domain(name)) if local_name(name) => {
            if allow_loopback && loopback_name(name) {
                Ok(())
            } else {
                Err(format!(
                    "the endpoint's host {name:?} names this machine or the local network, \
                     not a push service"
                ))
            }
        }
        _ => Ok(()),
    }
}

/// A name that only means this machine or the local network: `localhost` (any case, with or
/// without the final dot, and its subdomains), `.local`, `.internal`, `.lan`, `.home.arpa`, or
/// a single label (completed by the machine's search domains).
fn local_name(name: &str) -> bool {
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    !name.contains('.')
        || loopback_name(&name)
        || [".local", ".internal", ".lan", ".home.arpa", ".localdomain"]
            .iter()
            .any(|suffix| name.ends_with(suffix))
}

fn loopback_name(name: &str) -> bool {
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    name == "localhost" || name.ends_with(".localhost")
}

/// The push client's resolver: the system's, keeping only the addresses pushes may go to.
/// A name with none left fails to resolve, so nothing is sent.
#[derive(Debug, Clone, Copy)]
pub struct PublicOnly {
    pub allow_loopback: bool,
}

impl Resolve for PublicOnly {
    fn resolve(&self, name: Name) -> Resolving {
        let allow_loopback = self.allow_loopback;
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let found: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let kept: Vec<SocketAddr> = found
                .iter()
                .copied()
                .filter(|a| allowed(a.ip(), allow_loopback).is_ok())
                .collect();
            if kept.is_empty() {
                let why = found
                    .first()
                    .and_then(|a| allowed(a.ip(), allow_loopback).err())
                    .unwrap_or("nothing");
                let message =
                    format!("{host} resolves only to addresses pushes never go to ({why})");
                return Err(message.into());
            }
            let addrs: Addrs = Box::new(kept.into_iter());
            Ok(addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(endpoint: &str, allow_loopback: bool) -> Result<(), String> {
        check_endpoint(&Url::parse(endpoint).expect("a URL"), allow_loopback)
    }

    #[test]
    fn inward_endpoints_are_refused_with_the_reason() {
        for endpoint in [
            "https://0.0.0.0/x",
            "https://0.1.2.3/x",
            "https://[::]/x",
            "https://127.0.0.1/x",
            "https://[::1]/x",
            "https://[::ffff:127.0.0.1]/x",
            "https://[::ffff:10.0.0.1]/x",
            "https://[::127.0.0.1]/x",
            "https://[64:ff9b::a00:1]/x",
            "https://10.1.2.3/x",
            "https://172.16.0.1/x",
            "https://192.168.1.1/x",
            "https://169.254.169.254/latest/meta-data",
            "https://100.64.0.1/x",
            "https://[fe80::1]/x",
            "https://[fd00::1]/x",
            "https://[ff02::1]/x",
            "https://255.255.255.255/x",
            "https://224.0.0.1/x",
            "https://localhost/x",
            "https://LOCALHOST./x",
            "https://push.localhost/x",
            "https://intranet/x",
            "https://router.lan/x",
            "https://printer.local/x",
            "https://metadata.google.internal/x",
        ] {
            let refused = check(endpoint, false);
            assert!(refused.is_err(), "{endpoint} must be refused");
        }
        let why = check("https://[::ffff:127.0.0.1]/x", false).unwrap_err();
        assert!(why.contains("loopback"), "{why}");
    }

    #[test]
    fn push_services_and_public_addresses_pass() {
        for endpoint in [
            "https://fcm.googleapis.com/fcm/send/abc",
            "https://updates.push.services.mozilla.com/wpush/v2/abc",
            "https://web.push.apple.com/abc",
            "https://8.8.8.8/x",
            "https://[2606:4700::1111]/x",
        ] {
            assert_eq!(check(endpoint, false), Ok(()), "{endpoint}");
        }
        assert!(
            check("http://fcm.googleapis.com/x", false).is_err(),
            "https only"
        );
    }

    #[test]
    fn allow_loopback_lets_loopback_through_and_nothing_else() {
        for endpoint in [
            "http://127.0.0.1:8080/x",
            "https://[::1]/x",
            "https://[::ffff:127.0.0.1]/x",
            "http://localhost:9/x",
        ] {
            assert_eq!(check(endpoint, true), Ok(()), "{endpoint}");
        }
        for endpoint in [
            "https://10.0.0.1/x",
            "https://0.0.0.0/x",
            "https://intranet/x",
        ] {
            assert!(check(endpoint, true).is_err(), "{endpoint}");
        }
    }

    #[tokio::test]
    async fn the_resolver_keeps_no_inward_address_and_so_connects_nowhere() {
        // "localhost" resolves (from the hosts file) to loopback only: refused outright,
        // before any connection; with allow_loopback it resolves.
        let refused = PublicOnly {
            allow_loopback: false,
        }
        .resolve("localhost".parse().expect("a name"))
        .await;
        let why = refused.err().expect("refused").to_string();
        assert!(why.contains("loopback"), "{why}");
        let allowed = PublicOnly {
            allow_loopback: true,
        }
        .resolve("localhost".parse().expect("a name"))
        .await
        .expect("resolved");
        assert!(allowed.into_iter().all(|a| a.ip().is_loopback()));
    }
}
