//! The SSRF guard: webhooks may target only global unicast addresses.
//!
//! An allow-list, not a list of what to refuse: an IPv4 address must be
//! unicast (below 224.0.0.0/4) and outside every block the IANA
//! special-purpose registry marks not globally reachable (private,
//! loopback, link-local with the cloud metadata at 169.254.169.254, CGNAT,
//! documentation, benchmarking, ...); an IPv6 address must be in global
//! unicast 2000::/3 and outside its special blocks (2001::/23 with Teredo,
//! documentation 2001:db8::/32 and 3fff::/20). IPv6 addresses that lead to
//! an IPv4 host (IPv4-mapped, NAT64 64:ff9b::/96, 6to4 2002::/16) are
//! judged by that IPv4 address; everything else (unique-local, link-local,
//! multicast, IPv4-compatible, SIIT, local-use NAT64, ...) is refused.
//! `--allow-private-webhooks` turns the guard off (its callers skip it).
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

/// An address block: the first address and the prefix length.
struct Block<A> {
    network: A,
    prefix: u8,
    what: &'static str,
}

const fn v4(a: u8, b: u8, c: u8, d: u8, prefix: u8, what: &'static str) -> Block<Ipv4Addr> {
    Block {
        network: Ipv4Addr::new(a, b, c, d),
        prefix,
        what,
    }
}

const fn v6(s: [u16; 8], prefix: u8, what: &'static str) -> Block<Ipv6Addr> {
    Block {
        network: Ipv6Addr::new(s[0], s[1], s[2], s[3], s[4], s[5], s[6], s[7]),
        prefix,
        what,
    }
}

fn in_v4(ip: Ipv4Addr, block: &Block<Ipv4Addr>) -> bool {
    let mask = u32::MAX.checked_shl(32 - u32::from(block.prefix)).unwrap_or(0);
    u32::from(ip) & mask == u32::from(block.network) & mask
}

fn in_v6(ip: Ipv6Addr, block: &Block<Ipv6Addr>) -> bool {
    let mask = u128::MAX.checked_shl(128 - u32::from(block.prefix)).unwrap_or(0);
    u128::from(ip) & mask == u128::from(block.network) & mask
}

/// Every block of the IPv4 unicast space (below 224.0.0.0/4) that is not
/// globally reachable, from the IANA IPv4 Special-Purpose Address Registry,
/// plus the deprecated 6to4 relay anycast block.
const V4_NOT_GLOBAL: &[Block<Ipv4Addr>] = &[
    v4(0, 0, 0, 0, 8, "in \"this network\" (0.0.0.0/8)"),
    v4(10, 0, 0, 0, 8, "private (10.0.0.0/8)"),
    v4(100, 64, 0, 0, 10, "shared address space (CGNAT, 100.64.0.0/10)"),
    v4(127, 0, 0, 0, 8, "loopback (127.0.0.0/8)"),
    v4(169, 254, 0, 0, 16, "link-local (169.254.0.0/16, cloud metadata)"),
    v4(172, 16, 0, 0, 12, "private (172.16.0.0/12)"),
    v4(192, 0, 0, 0, 24, "IETF protocol assignments (192.0.0.0/24)"),
    v4(192, 0, 2, 0, 24, "documentation (TEST-NET-1, 192.0.2.0/24)"),
    v4(
        192,
        88,
        99,
        0,
        24,
        "the deprecated 6to4 relay anycast block (192.88.99.0/24)",
    ),
    v4(192, 168, 0, 0, 16, "private (192.168.0.0/16)"),
    v4(198, 18, 0, 0, 15, "benchmarking (198.18.0.0/15)"),
    v4(198, 51, 100, 0, 24, "documentation (TEST-NET-2, 198.51.100.0/24)"),
    v4(203, 0, 113, 0, 24, "documentation (TEST-NET-3, 203.0.113.0/24)"),
];

/// Blocks inside global unicast 2000::/3 that are not globally reachable
/// (IANA IPv6 Special-Purpose Address Registry). All of 2001::/23 is
/// refused, though a few anycast services in it are global: no webhook
/// lives there.
const V6_GLOBAL_EXCEPTIONS: &[Block<Ipv6Addr>] = &[
    v6(
        [0x2001, 0, 0, 0, 0, 0, 0, 0],
        32,
        "Teredo (2001::/32), which reaches an IPv4 host through a relay",
    ),
    v6([0x2001, 0x2, 0, 0, 0, 0, 0, 0], 48, "benchmarking (2001:2::/48)"),
    v6(
        [0x2001, 0, 0, 0, 0, 0, 0, 0],
        23,
        "IETF protocol assignments (2001::/23)",
    ),
    v6(
        [0x2001, 0xdb8, 0, 0, 0, 0, 0, 0],
        32,
        "documentation (2001:db8::/32)",
    ),
    v6([0x3fff, 0, 0, 0, 0, 0, 0, 0], 20, "documentation (3fff::/20)"),
];

/// Names for the rest of the IPv6 space, which is refused anyway (it is
/// not global unicast): only for the message.
const V6_NAMED: &[Block<Ipv6Addr>] = &[
    v6([0; 8], 128, "unspecified (::)"),
    v6([0, 0, 0, 0, 0, 0, 0, 1], 128, "loopback (::1)"),
    v6(
        [0, 0, 0, 0, 0xffff, 0, 0, 0],
        96,
        "an SIIT IPv4-translated address (::ffff:0:0:0/96)",
    ),
    v6([0; 8], 96, "a deprecated IPv4-compatible address (::/96)"),
    v6(
        [0x64, 0xff9b, 1, 0, 0, 0, 0, 0],
        48,
        "local-use NAT64 (64:ff9b:1::/48)",
    ),
    v6([0x100, 0, 0, 0, 0, 0, 0, 0], 64, "discard-only (100::/64)"),
    v6([0x5f00, 0, 0, 0, 0, 0, 0, 0], 16, "an SRv6 SID (5f00::/16)"),
    v6([0xfc00, 0, 0, 0, 0, 0, 0, 0], 7, "unique-local (fc00::/7)"),
    v6([0xfe80, 0, 0, 0, 0, 0, 0, 0], 10, "link-local (fe80::/10)"),
    v6([0xfec0, 0, 0, 0, 0, 0, 0, 0], 10, "site-local (fec0::/10)"),
    v6([0xff00, 0, 0, 0, 0, 0, 0, 0], 8, "multicast (ff00::/8)"),
];

const V6_GLOBAL_UNICAST: Block<Ipv6Addr> = v6([0x2000, 0, 0, 0, 0, 0, 0, 0], 3, "global unicast (2000::/3)");
const V6_NAT64: Block<Ipv6Addr> = v6([0x64, 0xff9b, 0, 0, 0, 0, 0, 0], 96, "NAT64 (64:ff9b::/96)");
const V6_MAPPED: Block<Ipv6Addr> = v6([0, 0, 0, 0, 0, 0xffff, 0, 0], 96, "IPv4-mapped (::ffff:0:0/96)");
const V6_6TO4: Block<Ipv6Addr> = v6([0x2002, 0, 0, 0, 0, 0, 0, 0], 16, "6to4 (2002::/16)");

/// `None` when `ip` is global unicast: below 224.0.0.0/4 (multicast, then
/// reserved and broadcast) and in no block of [`V4_NOT_GLOBAL`].
fn forbidden_v4(ip: Ipv4Addr) -> Option<&'static str> {
    if ip.is_broadcast() {
        return Some("broadcast (255.255.255.255)");
    }
    match ip.octets()[0] {
        224..=239 => return Some("multicast (224.0.0.0/4)"),
        240..=255 => return Some("reserved (240.0.0.0/4)"),
        _ => {}
    }
    V4_NOT_GLOBAL
        .iter()
        .find(|block| in_v4(ip, block))
        .map(|block| block.what)
}

/// `None` when `ip` is global unicast: in 2000::/3 and in no block of
/// [`V6_GLOBAL_EXCEPTIONS`]. Addresses that carry an IPv4 address a
/// router or translator will reach (IPv4-mapped, NAT64's well-known
/// prefix, 6to4) are judged by that IPv4 address instead. Everything
/// else is refused.
fn forbidden_v6(ip: Ipv6Addr) -> Option<&'static str> {
    if let Some(embedded) = embedded_v4(ip) {
        return forbidden_v4(embedded).map(|_| "an IPv6 address embedding a forbidden IPv4 address");
    }
    if !in_v6(ip, &V6_GLOBAL_UNICAST) {
        let named = V6_NAMED.iter().find(|block| in_v6(ip, block));
        return Some(named.map_or("not global unicast (outside 2000::/3)", |block| block.what));
    }
    V6_GLOBAL_EXCEPTIONS
        .iter()
        .find(|block| in_v6(ip, block))
        .map(|block| block.what)
}

/// The IPv4 address an IPv4-mapped (`::ffff:a.b.c.d`), NAT64 well-known
/// (`64:ff9b::a.b.c.d`) or 6to4 (`2002:aabb:ccdd::/48`) address reaches.
/// Other embeddings (IPv4-compatible, SIIT, local-use NAT64, Teredo) are
/// refused whatever they carry.
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let bits = u128::from(ip);
    if in_v6(ip, &V6_MAPPED) || in_v6(ip, &V6_NAT64) {
        return Some(Ipv4Addr::from(bits as u32));
    }
    if in_v6(ip, &V6_6TO4) {
        return Some(Ipv4Addr::from((bits >> 80) as u32));
    }
    None
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

    /// Blocks the old refuse-list missed (issue 12) and the rest of the
    /// special-purpose registries: each must be refused.
    #[test]
    fn every_reserved_block_is_refused() {
        let refused = [
            // Documentation (TEST-NET-1..3, 2001:db8::/32, 3fff::/20).
            "192.0.2.1",
            "192.0.2.255",
            "198.51.100.7",
            "203.0.113.9",
            "2001:db8::1",
            "2001:db8:ffff:ffff::1",
            "3fff::1",
            "3fff:fff::1",
            // Local-use NAT64 (64:ff9b:1::/48), even embedding a public IPv4.
            "64:ff9b:1::808:808",
            "64:ff9b:1:ffff::1",
            // Teredo (2001::/32) and the rest of 2001::/23.
            "2001:0:4136:e378:8000:63bf:3fff:fdd2",
            "2001::1",
            "2001:2::1",
            "2001:10::1",
            "2001:1ff::1",
            // SIIT IPv4-translated (::ffff:0:0:0/96), even embedding a public IPv4.
            "::ffff:0:808:808",
            "::ffff:0:a00:1",
            // Deprecated IPv4-compatible (::/96), even embedding a public IPv4.
            "::8.8.8.8",
            // Reserved 240.0.0.0/4 and broadcast.
            "240.0.0.1",
            "250.1.2.3",
            "255.255.255.254",
            "255.255.255.255",
            // "This network" 0.0.0.0/8.
            "0.0.0.1",
            "0.255.255.255",
            // Multicast.
            "224.0.0.251",
            "239.255.255.250",
            "ff0e::1",
            "ff02::fb",
            // Benchmarking.
            "198.18.0.1",
            "198.19.255.255",
            "2001:2:0:ffff::1",
            // 6to4 embedding a forbidden IPv4, and the 6to4 relay anycast.
            "2002:c0a8:0101::1",
            "2002:7f00:0001::1",
            "2002:a9fe:a9fe::1",
            "2002:c000:0201::1",
            "2002:f000:0001::1",
            "192.88.99.1",
            // NAT64 well-known prefix embedding a forbidden IPv4.
            "64:ff9b::c000:201",
            "64:ff9b::7f00:1",
            // IPv4-mapped forms of the new IPv4 blocks.
            "::ffff:192.0.2.1",
            "::ffff:198.18.0.1",
            "::ffff:240.0.0.1",
            // IETF protocol assignments, discard-only, SRv6 SIDs, site-local.
            "192.0.0.8",
            "192.0.0.170",
            "100::1",
            "5f00::1",
            "fec0::1",
            // Not in 2000::/3 at all.
            "4000::1",
            "e000::1",
            "1::1",
        ];
        for ip in refused {
            let parsed: IpAddr = ip.parse().expect("valid address");
            assert!(forbidden_ip(parsed).is_some(), "{ip} must be refused");
        }
    }

    #[test]
    fn ordinary_public_addresses_are_allowed() {
        let allowed = [
            "8.8.8.8",
            "1.1.1.1",
            "9.9.9.9",
            "93.184.215.14",
            "223.255.255.1",
            "192.0.1.1",
            "192.0.3.1",
            "198.17.255.255",
            "198.20.0.1",
            "198.51.99.1",
            "203.0.112.1",
            "203.0.114.1",
            "2606:4700::1",
            "2606:4700:4700::1111",
            "2a00:1450:4001:80b::200e",
            "2001:200::1",
            "2001:db9::1",
            "3fff:1000::1",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
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
            "http://192.0.2.1/hook",
            "http://198.51.100.1:8080/",
            "https://203.0.113.5/",
            "http://[2001:db8::1]/",
            "http://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/",
            "http://[64:ff9b:1::808:808]/",
            "http://[::ffff:0:808:808]/",
            "http://[2002:c0a8:101::1]/",
            "http://240.0.0.1/",
            "http://0.1.2.3/",
            "http://198.18.0.1/",
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

    /// `--allow-private-webhooks` turns the guard off at registration;
    /// without it, every block refused above is refused there too.
    #[test]
    fn the_flag_allows_what_the_guard_refuses() {
        for url in [
            "http://192.0.2.1/hook",
            "http://[2001:db8::1]/hook",
            "http://10.0.0.1/hook",
            "http://[64:ff9b:1::a00:1]/hook",
        ] {
            assert!(
                crate::subscriptions::validate_url(url, false).is_err(),
                "{url} must be refused without the flag"
            );
            assert!(
                crate::subscriptions::validate_url(url, true).is_ok(),
                "{url} must be allowed with the flag"
            );
        }
        assert!(crate::subscriptions::validate_url("https://[2606:4700::1]/hook", false).is_ok());
    }

    #[test]
    fn resolved_addresses_are_filtered() {
        let resolved: Vec<SocketAddr> = [
            "127.0.0.1:80",
            "93.184.215.14:80",
            "[fd00::1]:80",
            "192.0.2.10:80",
            "[2001:db8::10]:80",
        ]
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
