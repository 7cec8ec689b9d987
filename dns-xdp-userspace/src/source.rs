//! The source addresses of the connections the daemon opens itself (NOTIFY, SOA probes, AXFR/IXFR
//! requests): `--source IP`, one per address family. Peers check where these come from (a
//! secondary accepts NOTIFY only from its primary, a primary transfers only to its allowed nodes),
//! so on a host with several addresses the kernel's choice of source (the first address of the
//! outgoing route, 127.0.0.1 on loopback) is often the wrong one. With no `--source`, a family's
//! source is the `--listen` address when exactly one specific address of that family is given,
//! as the address peers know us by.

use std::net::{IpAddr, SocketAddr};

use tokio::net::{TcpSocket, TcpStream, UdpSocket};

/// The address outgoing connections leave from, per family; `None`: the kernel chooses.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Sources {
    pub v4: Option<IpAddr>,
    pub v6: Option<IpAddr>,
}

impl Sources {
    /// Settles `--source` (at most one per family) with the default taken from `listen`.
    pub fn settle(given: &[IpAddr], listen: &[SocketAddr]) -> Result<Sources, String> {
        let mut s = Sources::default();
        for ip in given {
            let slot = if ip.is_ipv4() { &mut s.v4 } else { &mut s.v6 };
            if let Some(first) = slot.replace(*ip) {
                return Err(format!("source: {first} and {ip} are of the same family (give at most one of each)"));
            }
            if ip.is_unspecified() || ip.is_multicast() {
                return Err(format!("source {ip}: not an address of this host"));
            }
        }
        let only = |v4: bool| {
            let mut of_family = listen.iter().map(SocketAddr::ip).filter(|ip| ip.is_ipv4() == v4);
            match (of_family.next(), of_family.next()) {
                (Some(ip), None) if !ip.is_unspecified() => Some(ip),
                _ => None,
            }
        };
        s.v4 = s.v4.or_else(|| only(true));
        s.v6 = s.v6.or_else(|| only(false));
        Ok(s)
    }

    /// The local address to bind for talking to `peer`: our source of its family, any port.
    pub fn local_for(&self, peer: SocketAddr) -> SocketAddr {
        match peer {
            SocketAddr::V4(_) => SocketAddr::new(self.v4.unwrap_or([0, 0, 0, 0].into()), 0),
            SocketAddr::V6(_) => SocketAddr::new(self.v6.unwrap_or([0u16; 8].into()), 0),
        }
    }

    /// A UDP socket for exchanging messages with `peer`, bound to our source.
    pub async fn udp(&self, peer: SocketAddr) -> std::io::Result<UdpSocket> {
        UdpSocket::bind(self.local_for(peer)).await
    }

    /// A TCP connection to `peer` from our source.
    pub async fn tcp(&self, peer: SocketAddr) -> std::io::Result<TcpStream> {
        let socket = if peer.is_ipv4() { TcpSocket::new_v4()? } else { TcpSocket::new_v6()? };
        let local = self.local_for(peer);
        if !local.ip().is_unspecified() {
            socket.bind(local)?;
        }
        socket.connect(peer).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addrs(v: &[&str]) -> Vec<SocketAddr> {
        v.iter().map(|a| a.parse().unwrap()).collect()
    }

    #[test]
    fn one_specific_listen_address_per_family_is_the_default() {
        let s = Sources::settle(&[], &addrs(&["127.0.0.11:53", "[2001:db8::1]:53"])).unwrap();
        assert_eq!((s.v4, s.v6), (Some("127.0.0.11".parse().unwrap()), Some("2001:db8::1".parse().unwrap())));
        // A wildcard or two addresses of a family: no default, the kernel chooses.
        let s = Sources::settle(&[], &addrs(&["0.0.0.0:53", "[2001:db8::1]:53", "[2001:db8::2]:53"])).unwrap();
        assert_eq!(s, Sources::default());
        // Given sources win over the default, per family.
        let s = Sources::settle(&["192.0.2.1".parse().unwrap()], &addrs(&["127.0.0.11:53", "[::1]:53"])).unwrap();
        assert_eq!((s.v4, s.v6), (Some("192.0.2.1".parse().unwrap()), Some("::1".parse().unwrap())));
    }

    #[test]
    fn at_most_one_specific_source_per_family() {
        let two = ["192.0.2.1".parse().unwrap(), "192.0.2.2".parse().unwrap()];
        assert!(Sources::settle(&two, &[]).unwrap_err().contains("same family"));
        assert!(Sources::settle(&["::".parse().unwrap()], &[]).unwrap_err().contains("not an address"));
    }

    #[tokio::test]
    async fn sockets_leave_from_the_source() {
        let s = Sources { v4: Some("127.0.0.12".parse().unwrap()), v6: None };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let peer = listener.local_addr().unwrap();
        let (conn, accepted) = tokio::join!(s.tcp(peer), listener.accept());
        assert_eq!(conn.unwrap().local_addr().unwrap().ip(), s.v4.unwrap());
        assert_eq!(accepted.unwrap().1.ip(), s.v4.unwrap());
        assert_eq!(s.udp(peer).await.unwrap().local_addr().unwrap().ip(), s.v4.unwrap());
    }
}
