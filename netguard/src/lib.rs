//! Which IP addresses an outbound request must not reach: loopback, private, link-local,
//! shared, documentation, benchmarking, multicast and reserved ranges, in IPv4 and every IPv6
//! form that embeds IPv4 (mapped, compatible, NAT64, 6to4). The one place for these rules:
//! the host's fetcher checks every resolved address with it, and the edge component every
//! IP-literal host it is given.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Why an address must not be contacted, or `None` if it is a public unicast address.
pub fn forbidden_reason(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => v4_reason(v4),
        IpAddr::V6(v6) => v6_reason(v6),
    }
}

fn v4_reason(ip: Ipv4Addr) -> Option<&'static str> {
    let o = ip.octets();
    let n = u32::from(ip);
    let within = |net: u32, prefix: u32| n >> (32 - prefix) == net >> (32 - prefix);
    Some(match () {
        _ if o[0] == 0 => "an unspecified/\"this network\" address (0.0.0.0/8)",
        _ if o[0] == 127 => "a loopback address",
        _ if o[0] == 10 || within(0xac10_0000, 12) || within(0xc0a8_0000, 16) => "a private address",
        _ if within(0xa9fe_0000, 16) => "a link-local address (incl. the cloud metadata service)",
        _ if within(0x6440_0000, 10) => "a shared (CGNAT) address",
        _ if within(0xc000_0000, 24) => "an IETF protocol address (192.0.0.0/24)",
        _ if within(0xc000_0200, 24) || within(0xc633_6400, 24) || within(0xcb00_7100, 24) => {
            "a documentation address"
        }
        _ if within(0xc612_0000, 15) => "a benchmarking address",
        _ if within(0xc058_6300, 24) => "a 6to4 relay anycast address",
        _ if o[0] >= 224 && o[0] < 240 => "a multicast address",
        _ if o[0] >= 240 => "a reserved or broadcast address",
        _ => return None,
    })
}

fn v6_reason(ip: Ipv6Addr) -> Option<&'static str> {
    let s = ip.segments();
    let embedded_v4 = |hi: u16, lo: u16| Ipv4Addr::new((hi >> 8) as u8, hi as u8, (lo >> 8) as u8, lo as u8);
    if ip.is_unspecified() {
        return Some("the unspecified address");
    }
    if ip.is_loopback() {
        return Some("a loopback address");
    }
    // IPv4-mapped (::ffff:a.b.c.d) and the deprecated IPv4-compatible (::a.b.c.d) forms.
    if s[..5] == [0, 0, 0, 0, 0] && (s[5] == 0xffff || s[5] == 0) {
        return v4_reason(embedded_v4(s[6], s[7])).or(if s[5] == 0 {
            Some("an IPv4-compatible address")
        } else {
            None
        });
    }
    // NAT64 (64:ff9b::/96) reaches the embedded IPv4 address.
    if s[0] == 0x64 && s[1] == 0xff9b && s[2..6] == [0, 0, 0, 0] {
        return v4_reason(embedded_v4(s[6], s[7]));
    }
    Some(match s[0] {
        0x2002 => return v4_reason(embedded_v4(s[1], s[2])).or(Some("a 6to4 address")),
        0x2001 if s[1] == 0 => "a Teredo address",
        0x2001 if s[1] == 0xdb8 => "a documentation address",
        0x0100 if s[1..4] == [0, 0, 0] => "a discard-only address",
        x if x & 0xfe00 == 0xfc00 => "a unique-local address",
        x if x & 0xffc0 == 0xfe80 => "a link-local address",
        x if x & 0xffc0 == 0xfec0 => "a site-local address",
        x if x & 0xff00 == 0xff00 => "a multicast address",
        x if x & 0xe000 != 0x2000 => "not a global unicast address",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(ip: &str) -> bool {
        forbidden_reason(ip.parse().unwrap()).is_some()
    }

    #[test]
    fn every_special_range_is_refused() {
        for ip in [
            "0.0.0.0",
            "0.1.2.3",
            "127.0.0.1",
            "127.255.255.254",
            "10.0.0.1",
            "10.255.255.255",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.0.1",
            "192.168.255.255",
            "169.254.169.254",
            "169.254.0.1",
            "100.64.0.1",
            "100.127.255.255",
            "192.0.0.8",
            "192.0.2.1",
            "198.51.100.7",
            "203.0.113.9",
            "198.18.0.1",
            "198.19.255.1",
            "192.88.99.1",
            "224.0.0.1",
            "239.255.255.250",
            "240.0.0.1",
            "255.255.255.255",
            // IPv6
            "::",
            "::1",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "febf::1",
            "fec0::1",
            "ff02::1",
            "ff0e::1",
            "2001:db8::1",
            "2001::1",
            "100::1",
            "::ffff:127.0.0.1",
            "::ffff:10.1.2.3",
            "::ffff:169.254.169.254",
            "::ffff:0.0.0.0",
            "::127.0.0.1",
            "::10.0.0.1",
            "64:ff9b::127.0.0.1",
            "64:ff9b::a9fe:a9fe",
            "2002:7f00:1::",
            "2002:a9fe:a9fe::1",
            "2002:808:808::1",
            "::2",
            "4000::1",
        ] {
            assert!(refused(ip), "{ip} must be refused");
        }
    }

    #[test]
    fn public_addresses_pass() {
        for ip in [
            "1.1.1.1",
            "8.8.8.8",
            "93.184.216.34",
            "172.15.255.255",
            "172.32.0.1",
            "192.167.1.1",
            "100.63.255.255",
            "100.128.0.1",
            "169.253.1.1",
            "223.255.255.255",
            "2606:4700::1111",
            "2a00:1450:4001::1",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
        ] {
            assert!(
                !refused(ip),
                "{ip} is public: {:?}",
                forbidden_reason(ip.parse().unwrap())
            );
        }
    }
}
