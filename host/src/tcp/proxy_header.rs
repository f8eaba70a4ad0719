//! The PROXY protocol v2 header (haproxy's proxy-protocol.txt §2.2) a `[[tcp]]` listener
//! sends a target before the client's bytes: who the client is and which address it
//! connected to, in binary. Encoded by the `ppp` crate.

use std::net::{SocketAddr, SocketAddrV6};

use ppp::v2::{Builder, Command, Protocol, Version};

/// The v2 header for a TCP connection from `client` to `local` (the listener's address
/// the client reached): command PROXY, family AF_INET or AF_INET6, protocol STREAM. An
/// IPv4 address beside an IPv6 one is written IPv4-mapped, so that both fit one family.
pub fn v2(client: SocketAddr, local: SocketAddr) -> std::io::Result<Vec<u8>> {
    let addresses = match (client, local) {
        (SocketAddr::V4(_), SocketAddr::V6(_)) => (mapped(client), local),
        (SocketAddr::V6(_), SocketAddr::V4(_)) => (client, mapped(local)),
        same_family => same_family,
    };
    Builder::with_addresses(Version::Two | Command::Proxy, Protocol::Stream, addresses).build()
}

/// `addr` as an IPv6 socket address (IPv4-mapped when it is IPv4).
fn mapped(addr: SocketAddr) -> SocketAddr {
    match addr {
        SocketAddr::V4(v4) => {
            SocketAddr::V6(SocketAddrV6::new(v4.ip().to_ipv6_mapped(), v4.port(), 0, 0))
        }
        v6 => v6,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The signature of §2.2: `\r\n\r\n\0\r\nQUIT\n`.
    const SIGNATURE: [u8; 12] = [
        0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A,
    ];

    #[test]
    fn ipv4_follows_the_spec_layout() {
        let client: SocketAddr = "192.0.2.10:51000".parse().unwrap();
        let local: SocketAddr = "198.51.100.1:5432".parse().unwrap();
        let header = v2(client, local).unwrap();
        let mut expected = SIGNATURE.to_vec();
        // Version 2, command PROXY; AF_INET, STREAM; 12 bytes of addresses.
        expected.extend([0x21, 0x11, 0x00, 0x0C]);
        expected.extend([192, 0, 2, 10, 198, 51, 100, 1]);
        expected.extend(51000u16.to_be_bytes());
        expected.extend(5432u16.to_be_bytes());
        assert_eq!(header, expected);
    }

    #[test]
    fn ipv6_and_mixed_families() {
        let client: SocketAddr = "[2001:db8::1]:40000".parse().unwrap();
        let local: SocketAddr = "[2001:db8::2]:443".parse().unwrap();
        let header = v2(client, local).unwrap();
        // AF_INET6, STREAM; 36 bytes: two addresses of 16, two ports.
        assert_eq!(header[12..16], [0x21, 0x21, 0x00, 0x24]);
        assert_eq!(header.len(), 16 + 36);
        assert_eq!(
            header[16..32],
            "2001:db8::1"
                .parse::<std::net::Ipv6Addr>()
                .unwrap()
                .octets()
        );
        assert_eq!(header[48..50], 40000u16.to_be_bytes());
        // A v4 client on a v6 listener: both written as IPv6, the client v4-mapped.
        let mixed = v2("192.0.2.10:51000".parse().unwrap(), local).unwrap();
        assert_eq!(mixed[13], 0x21);
        assert_eq!(
            mixed[16..32],
            std::net::Ipv4Addr::new(192, 0, 2, 10)
                .to_ipv6_mapped()
                .octets()
        );
    }
}
