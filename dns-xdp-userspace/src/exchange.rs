//! Asking another DNS server one question, as a client would: over UDP or TCP (RFC 7766 framing),
//! with a deadline. Used by shadow validation and `dns-xdp diff`; never on the path of a real
//! answer.

use std::net::SocketAddr;
use std::time::Duration;

use dns_xdp_common::dns::MAX_MESSAGE;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

/// Transport to ask over.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Proto {
    Udp,
    Tcp,
}

impl Proto {
    pub fn name(self) -> &'static str {
        match self {
            Proto::Udp => "udp",
            Proto::Tcp => "tcp",
        }
    }
}

/// Why no answer came. Never a mismatch: the other server was not heard.
#[derive(Debug, thiserror::Error)]
pub enum AskError {
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("unreachable: {0}")]
    Unreachable(std::io::Error),
}

impl AskError {
    /// The `kind` label of `dnsxdp_shadow_reference_errors_total`.
    pub fn kind(&self) -> &'static str {
        match self {
            AskError::Timeout(_) => "timeout",
            AskError::Unreachable(_) => "unreachable",
        }
    }
}

/// Sends `query` to `server` over `proto` and returns the reply carrying the same ID.
pub async fn ask(server: SocketAddr, query: &[u8], proto: Proto, timeout: Duration) -> Result<Vec<u8>, AskError> {
    match tokio::time::timeout(timeout, exchange(server, query, proto)).await {
        Ok(r) => r.map_err(AskError::Unreachable),
        Err(_) => Err(AskError::Timeout(timeout)),
    }
}

/// `ask` over UDP, then over TCP when the UDP reply is truncated (TC=1), as a resolver would.
pub async fn ask_full(
    server: SocketAddr,
    query: &[u8],
    proto: Proto,
    timeout: Duration,
) -> Result<(Vec<u8>, Proto), AskError> {
    let reply = ask(server, query, proto, timeout).await?;
    if proto == Proto::Udp && truncated(&reply) {
        return Ok((ask(server, query, Proto::Tcp, timeout).await?, Proto::Tcp));
    }
    Ok((reply, proto))
}

/// The TC bit of a DNS message.
pub fn truncated(msg: &[u8]) -> bool {
    msg.get(2).is_some_and(|f| f & 0x02 != 0)
}

async fn exchange(server: SocketAddr, query: &[u8], proto: Proto) -> std::io::Result<Vec<u8>> {
    match proto {
        Proto::Udp => {
            let local: SocketAddr = if server.is_ipv4() { ([0, 0, 0, 0], 0).into() } else { ([0u16; 8], 0).into() };
            let socket = UdpSocket::bind(local).await?;
            // Connected: replies from elsewhere are filtered by the kernel, and an ICMP port
            // unreachable comes back as ECONNREFUSED instead of a silent timeout.
            socket.connect(server).await?;
            socket.send(query).await?;
            let mut buf = vec![0u8; MAX_MESSAGE];
            loop {
                let len = socket.recv(&mut buf).await?;
                if len >= 2 && query.len() >= 2 && buf[..2] == query[..2] {
                    buf.truncate(len);
                    return Ok(buf);
                }
            }
        }
        Proto::Tcp => {
            let mut conn = TcpStream::connect(server).await?;
            let _ = conn.set_nodelay(true);
            let mut framed = Vec::with_capacity(query.len() + 2);
            framed.extend_from_slice(&(query.len() as u16).to_be_bytes());
            framed.extend_from_slice(query);
            conn.write_all(&framed).await?;
            let mut len = [0u8; 2];
            conn.read_exact(&mut len).await?;
            let mut msg = vec![0u8; u16::from_be_bytes(len) as usize];
            conn.read_exact(&mut msg).await?;
            Ok(msg)
        }
    }
}
