//! The SSRF guard: webhook URLs must not reach loopback, private,
//! link-local (cloud metadata at 169.254.169.254), unique-local, CGNAT,
//! multicast or otherwise special addresses.
//!
//! Checked twice: at registration on the URL's host, and at connect time on
//! every address a name resolves to ([`GuardedResolver`]), so that a name
//! that later resolves to a private address (DNS rebinding) is refused too.
//! IP-literal hosts never reach a resolver, so the delivery path checks the
//! URL again before every attempt ([`check_url`]).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::Url;

/// Why `ip` may not be a webhook target, or `None` if it may.
pub fn forbidden_ip(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => forbidden_v4(v4),
        IpAddr::V6(v6) => forbidden_v6(v6),
    }
}

/// Checks the host of a parsed webhook URL: IP literals by address class,
/// and the name `localhost`. Other names are checked when they resolve.
pub fn check_url(url: &Url) -> Result<(), String> {
    let Some(host) = url.host_str() else {
        return Err("the URL has no host".into());
    };
    // The URL parser has already normalized IPv4 forms such as `0x7f.1`
    // and `2130706433` to dotted quads, and brackets IPv6 literals.
    if let Some(v6) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        let ip: Ipv6Addr = v6
            .parse()
            .map_err(|_| format!("the host {host} is not an IPv6 address"))?;
        return refuse_ip(IpAddr::V6(ip));
    }
    if let Ok(v4) = host.parse::<Ipv4Addr>() {
        return refuse_ip(IpAddr::V4(v4));
    }
    let name = host.trim_end_matches('.').to_ascii_lowercase();
    if name.is_empty() {
        return Err("the URL has no host".into());
    }
    if name == "localhost" || name.ends_with(".localhost") {
        return Err(format!(
            "the host {name:?} is loopback; webhooks may not target it \
             (start the learner with --allow-private-webhooks to allow it)"
        ));
    }
    Ok(())
}

/// A DNS resolver for webhook clients that drops every forbidden address
/// and fails when none is left.
#[derive(Debug, Clone, Copy, Default)]
pub struct GuardedResolver;

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let resolved: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let allowed = allowed_addresses(&resolved);
            if allowed.is_empty() {
                let message = format!(
                    "{host} resolves only to addresses webhooks may not target ({resolved:?}); \
                     start the learner with --allow-private-webhooks to allow them"
                );
                return Err(message.into());
            }
            let addrs: Addrs = Box::new(allowed.into_iter());
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>(addrs)
        })
    }
}

/// The addresses of `resolved` that webhooks may target.
pub fn allowed_addresses(resolved: &[SocketAddr]) -> Vec<SocketAddr> {
    resolved
        .iter()
        .copied()
        .filter(|addr| forbidden_ip(addr.ip()).is_none())
        .collect()
}

fn refuse_ip(ip: IpAddr) -> Result<(), String> {
    match forbidden_ip(ip) {
        Some(class) => Err(format!(
            "the address {ip} is {class}; webhooks may not target it \
             (start the learner with --allow-private-webhooks to allow it)"
        )),
        None => Ok(()),
    }
}

fn forbidden_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, c, _] = ip.octets();
    match (a, b, c) {
        _ if ip.is_unspecified() => Some("unspecified"),
        (0, _, _) => Some("in \"this network\" (0.0.0.0/8)"),
        (127, _, _) => Some("loopback"),
        (10, _, _) => Some("private (10.0.0.0/8)"),
        (172, 16..=31, _) => Some("private (172.16.0.0/12)"),
        (192, 168, _) => Some("private (192.168.0.0/16)"),
        (169, 254, _) => Some("link-local (169.254.0.0/16, cloud metadata)"),
        (100, 64..=127, _) => Some("shared address space (CGNAT, 100.64.0.0/10)"),
        (192, 0, 0) => Some("IETF protocol assignments (192.0.0.0/24)"),
        (198, 18..=19, _) => Some("benchmarking (198.18.0.0/15)"),
        _ if ip.is_broadcast() => Some("broadcast"),
        (224..=239, _, _) => Some("multicast"),
        (240..=255, _, _) => Some("reserved (240.0.0.0/4)"),
        _ => None,
    }
}

fn forbidden_v6(ip: Ipv6Addr) -> Option<&'static str> {
    let segments = ip.segments();
    if let Some(v4) = embedded_v4(ip) {
        return forbidden_v4(v4).map(|_| "an IPv6 address embedding a forbidden IPv4 address");
    }
    match segments[0] {
        _ if ip.is_unspecified() => Some("unspecified"),
        _ if ip.is_loopback() => Some("loopback"),
        s if s & 0xffc0 == 0xfe80 => Some("link-local (fe80::/10)"),
        s if s & 0xffc0 == 0xfec0 => Some("site-local (fec0::/10)"),
        s if s & 0xfe00 == 0xfc00 => Some("unique-local (fc00::/7)"),
        s if s & 0xff00 == 0xff00 => Some("multicast"),
        _ => None,
    }
}

/// The IPv4 address carried inside an IPv4-mapped (`::ffff:a.b.c.d`),
/// IPv4-compatible (`::a.b.c.d`), NAT64 (`64:ff9b::/96`) or 6to4
/// (`2002::/16`) address: such an address reaches that IPv4 host.
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = ip.segments();
    let low = Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
    match s {
        [0, 0, 0, 0, 0, 0xffff, _, _] => Some(low),
        // `::` and `::1` are themselves, not embeddings.
        [0, 0, 0, 0, 0, 0, hi, lo] if hi != 0 || lo > 1 => Some(low),
        [0x64, 0xff9b, 0, 0, 0, 0, _, _] => Some(low),
        [0x2002, hi, lo, ..] => Some(Ipv4Addr::new(
            (hi >> 8) as u8,
            hi as u8,
            (lo >> 8) as u8,
            lo as u8,
        )),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn address_table() {
        let forbidden = [
            "127.0.0.1",
            "127.255.0.9",
            "10.0.0.1",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "100.127.255.254",
            "0.0.0.0",
            "0.1.2.3",
            "224.0.0.1",
            "255.255.255.255",
            "240.0.0.1",
            "::",
            "::1",
            "fe80::1",
            "febf::1",
            "fc00::1",
            "fd12:3456::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "::ffff:169.254.169.254",
            "::10.0.0.1",
            "64:ff9b::a9fe:a9fe",
            "2002:0a00:0001::1",
        ];
        for ip in forbidden {
            let parsed: IpAddr = ip.parse().expect("valid address");
            assert!(forbidden_ip(parsed).is_some(), "{ip} must be refused");
        }
        let allowed = [
            "8.8.8.8",
            "1.1.1.1",
            "172.15.255.255",
            "172.32.0.1",
            "100.63.255.255",
            "100.128.0.1",
            "169.253.0.1",
            "192.169.0.1",
            "2606:4700:4700::1111",
            "::ffff:8.8.8.8",
            "2002:0808:0808::1",
        ];
        for ip in allowed {
            let parsed: IpAddr = ip.parse().expect("valid address");
            assert_eq!(forbidden_ip(parsed), None, "{ip} must be allowed");
        }
    }

    #[test]
    fn urls_are_checked_on_their_host() {
        let refused = [
            "http://169.254.169.254/latest/meta-data",
            "http://10.0.0.1/hook",
            "http://localhost:8080/",
            "http://LOCALHOST./",
            "http://api.localhost/",
            "http://[::1]/",
            "http://[::ffff:7f00:1]/",
            "http://0x7f.1/",
            "http://2130706433/",
        ];
        for url in refused {
            let parsed = Url::parse(url).expect("parses");
            assert!(check_url(&parsed).is_err(), "{url} must be refused");
        }
        for url in [
            "https://example.com/hook",
            "http://8.8.8.8:8080/x",
            "https://[2606:4700::1]/",
        ] {
            let parsed = Url::parse(url).expect("parses");
            assert_eq!(check_url(&parsed), Ok(()), "{url} must be allowed");
        }
    }

    #[test]
    fn resolved_addresses_are_filtered() {
        let resolved: Vec<SocketAddr> = ["127.0.0.1:80", "93.184.215.14:80", "[fd00::1]:80"]
            .iter()
            .map(|a| a.parse().expect("valid"))
            .collect();
        let allowed = allowed_addresses(&resolved);
        assert_eq!(allowed, vec!["93.184.215.14:80".parse().expect("valid")]);
    }

    #[tokio::test]
    async fn the_resolver_refuses_a_name_that_resolves_only_to_loopback() {
        let name: Name = "localhost".parse().expect("valid name");
        let result = GuardedResolver.resolve(name).await;
        let message = match result {
            Ok(addrs) => panic!("localhost must be refused, got {:?}", addrs.collect::<Vec<_>>()),
            Err(error) => error.to_string(),
        };
        assert!(message.contains("may not target"), "{message}");
    }
}
