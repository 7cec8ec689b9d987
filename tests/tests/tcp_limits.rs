//! DNS over TCP cannot be starved (issue 19, item 1): 1,100 connections from one address that send
//! pipelined queries and never read their answers must not keep another client from its answers, nor
//! cost the daemon more than a core. Before the limits, those connections held the 1,024 slots for ever.

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use dns_xdp_tests::cluster::{Node, free_port, http, tcp_query};
use dns_xdp_tests::{TempDir, ready};

const ATTACKERS: usize = 1_100;
/// Queries each attacker pipelines without reading: every answer is ~2.6 KB, 5 MB in all, more than
/// the daemon's socket send buffer grows to (tcp_wmem's 4 MB), so its writes block.
const PIPELINED: usize = 2_000;
const TXT: u16 = 16;

/// Seconds of CPU the process has used (user + system).
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("reading /proc/pid/stat");
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let fields: Vec<&str> = stat.rsplit_once(')').expect("stat format").1.split_whitespace().collect();
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    // SAFETY: sysconf has no preconditions.
    ticks / unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64
}

/// One TXT query over a fresh connection from source address `from` (any 127/8 address is ours, and
/// the legitimate client must not share the attackers' address); the time to its answer.
fn ask_from(from: &str, server: SocketAddr) -> Result<Duration, String> {
    let start = Instant::now();
    let mut sock = socket_from(from, server, None)?;
    sock.set_read_timeout(Some(Duration::from_secs(3))).map_err(|e| e.to_string())?;
    sock.write_all(&tcp_query(0x4242, "big.limits.test.", TXT)).map_err(|e| e.to_string())?;
    let mut len = [0u8; 2];
    sock.read_exact(&mut len).map_err(|e| format!("reading the answer: {e}"))?;
    let mut msg = vec![0u8; usize::from(u16::from_be_bytes(len))];
    sock.read_exact(&mut msg).map_err(|e| format!("reading the answer: {e}"))?;
    if msg[..2] != [0x42, 0x42] || msg[3] & 0xf != 0 {
        return Err(format!("unexpected answer {:02x?}", &msg[..12.min(msg.len())]));
    }
    Ok(start.elapsed())
}

/// A TCP connection to `server` from source address `from`, with a receive buffer of `rcvbuf` bytes
/// when given (set before connecting, so the window the peer sees is small from the start).
fn socket_from(from: &str, server: SocketAddr, rcvbuf: Option<libc::c_int>) -> Result<TcpStream, String> {
    // std has no bind-before-connect: do it with the socket calls.
    // SAFETY: plain syscall; the result is checked.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error().to_string());
    }
    // SAFETY: `fd` is a fresh socket we own from here on.
    let stream: TcpStream = unsafe { std::os::fd::FromRawFd::from_raw_fd(fd) };
    let sa = |ip: std::net::Ipv4Addr, port: u16| libc::sockaddr_in {
        sin_family: libc::AF_INET as u16,
        sin_port: port.to_be(),
        sin_addr: libc::in_addr { s_addr: u32::from(ip).to_be() },
        sin_zero: [0; 8],
    };
    let local = sa(from.parse().map_err(|e| format!("{from}: {e}"))?, 0);
    let SocketAddr::V4(remote) = server else { return Err("IPv4 only".into()) };
    let remote = sa(*remote.ip(), remote.port());
    let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
    // SAFETY: the sockaddrs and the buffer size live across the calls and their sizes are passed.
    unsafe {
        if let Some(size) = rcvbuf {
            let size_len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
            libc::setsockopt(fd, libc::SOL_SOCKET, libc::SO_RCVBUF, (&size as *const libc::c_int).cast(), size_len);
        }
        if libc::bind(fd, (&local as *const libc::sockaddr_in).cast(), len) != 0
            || libc::connect(fd, (&remote as *const libc::sockaddr_in).cast(), len) != 0
        {
            return Err(std::io::Error::last_os_error().to_string());
        }
    }
    Ok(stream)
}

#[test]
fn pipelining_clients_that_never_read_do_not_starve_tcp() {
    if !ready() {
        return;
    }
    // The attackers' 1,100 sockets need more than the default 1,024 descriptors here too.
    dns_xdp_tests::allow_open_files(ATTACKERS + 100);

    let dir = TempDir::new();
    let zone = dir.path().join("limits.test.zone");
    let strings: String = (0..10).map(|i| format!(" \"{}\"", char::from(b'a' + i).to_string().repeat(255))).collect();
    std::fs::write(
        &zone,
        format!(
            "$ORIGIN limits.test.\n$TTL 300\n@ IN SOA ns hostmaster 1 3600 900 604800 300\n@ IN NS ns\nns IN A 192.0.2.1\nbig IN TXT{strings}\n"
        ),
    )
    .unwrap();
    let server: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let node = Node::start(server, &["--zone".into(), zone.to_string_lossy().into_owned()]);
    let pid = node.pid().expect("daemon running");
    assert!(ask_from("127.0.0.2", server).is_ok(), "answers before the attack");

    let cpu0 = cpu_seconds(pid);
    let t0 = Instant::now();
    let burst: Vec<u8> = (0..PIPELINED).flat_map(|i| tcp_query(i as u16, "big.limits.test.", TXT)).collect();
    let mut attackers = Vec::new();
    for _ in 0..ATTACKERS {
        // A small receive window: the answers the daemon writes back pile up on its side at once.
        let Ok(mut s) = socket_from("127.0.0.1", server, Some(4096)) else { continue };
        let _ = s.set_write_timeout(Some(Duration::from_millis(50)));
        // Pipelined queries, never a read; a connection the daemon closed just fails to take them.
        let _ = s.write_all(&burst);
        attackers.push(s);
    }
    let opened = attackers.len();
    eprintln!("{opened} attacking connections open after {:?}", t0.elapsed());
    // While they hold on, another client asks, several times.
    let mut worst = Duration::ZERO;
    for _ in 0..5 {
        let took = ask_from("127.0.0.2", server)
            .unwrap_or_else(|e| panic!("a legitimate client got no answer: {e}\n{}", node.log()));
        worst = worst.max(took);
        std::thread::sleep(Duration::from_millis(200));
    }
    let cpu = (cpu_seconds(pid) - cpu0) / t0.elapsed().as_secs_f64();
    eprintln!("legitimate client's slowest answer {worst:?}; daemon CPU {cpu:.2} cores over the attack");
    assert!(worst < Duration::from_secs(1), "a legitimate client waited {worst:?} for its answer");
    assert!(cpu < 1.0, "the daemon used {cpu:.2} cores under the attack");
    // The limits did the work: connections over the per-client cap were closed at accept, and the
    // admitted ones that never read were closed once a reply could not be written in time.
    std::thread::sleep(Duration::from_secs(6));
    let (_, metrics) = http(node.metrics, "GET", "/metrics", None, "").expect("metrics");
    let value = |series: &str| -> u64 {
        metrics.lines().find(|l| l.starts_with(series)).and_then(|l| l.rsplit(' ').next()?.parse().ok()).unwrap_or(0)
    };
    let refused = value("dnsxdp_tcp_closed_total{reason=\"refused\"}");
    let timed_out = value("dnsxdp_tcp_closed_total{reason=\"write_stalled\"}");
    eprintln!("closed: {refused} refused at accept, {timed_out} with a reply stalled");
    assert!(refused as usize >= opened.saturating_sub(32 + 1), "refused {refused} of {opened}");
    assert!(timed_out > 0, "no connection closed on its write timeout");
    drop(attackers);
    assert!(ask_from("127.0.0.2", server).is_ok(), "answers after the attack");
}
