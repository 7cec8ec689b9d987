//! Two namespaces, server and client, joined by a veth pair, addressed from ranges that never route.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::process::{Child, Stdio};
use std::time::Duration;

use crate::dig::DigOutput;
use crate::{Netns, stop, testbed_bin, unique, wait_for};

/// The server's end of the veth pair (inside the server namespace).
pub const SRV_IF: &str = "veth-srv";
/// The client's end (inside the client namespace).
pub const CLI_IF: &str = "veth-cli";
/// How long `dns-xdp-testbed xdp-pass` may take to attach.
const XDP_PASS_DEADLINE: Duration = Duration::from_secs(10);

/// A server netns and a client netns joined by a veth pair.
///
/// Addresses: a /24 of the benchmarking range 198.18.0.0/15 (RFC 2544) and a /64 of the ULA prefix
/// fd00:d15:c0de::/48, numbered per test. Namespaces already isolate tests from each other; distinct
/// subnets keep captures and logs of parallel tests unambiguous.
pub struct TestNet {
    pub srv: Netns,
    pub cli: Netns,
    pub srv_v4: Ipv4Addr,
    pub cli_v4: Ipv4Addr,
    pub srv_v6: Ipv6Addr,
    pub cli_v6: Ipv6Addr,
    xdp_pass: Option<Child>,
}

impl TestNet {
    /// The full test bed: veth pair, tx checksum offload off on the client, and `dns-xdp-testbed xdp-pass` on the
    /// client veth, so native-mode XDP_TX replies reach the client (ARCHITECTURE.md section 5).
    pub fn new() -> Self {
        let mut net = Self::without_xdp_pass();
        net.start_xdp_pass();
        net
    }

    /// The veth pair and addresses only: for reference servers, which answer through the kernel stack.
    pub fn without_xdp_pass() -> Self {
        let n = unique();
        let tag = format!("dxt-{}-{n}", std::process::id());
        let srv = Netns::new(&format!("{tag}-s"));
        let cli = Netns::new(&format!("{tag}-c"));
        let subnet = n % 512;
        let (b, c) = (18 + (subnet / 256) as u8, (subnet % 256) as u8);
        let net = TestNet {
            srv_v4: Ipv4Addr::new(198, b, c, 1),
            cli_v4: Ipv4Addr::new(198, b, c, 2),
            srv_v6: Ipv6Addr::new(0xfd00, 0x0d15, 0xc0de, subnet as u16, 0, 0, 0, 1),
            cli_v6: Ipv6Addr::new(0xfd00, 0x0d15, 0xc0de, subnet as u16, 0, 0, 0, 2),
            srv,
            cli,
            xdp_pass: None,
        };
        crate::run_ok(std::process::Command::new("ip").args([
            "link",
            "add",
            SRV_IF,
            "netns",
            net.srv.name(),
            "type",
            "veth",
            "peer",
            "name",
            CLI_IF,
            "netns",
            net.cli.name(),
        ]));
        for (ns, ifname, v4, v6) in
            [(&net.srv, SRV_IF, net.srv_v4, net.srv_v6), (&net.cli, CLI_IF, net.cli_v4, net.cli_v6)]
        {
            ns.ip(&["addr", "add", &format!("{v4}/24"), "dev", ifname]);
            // nodad: the address is usable at once instead of after duplicate address detection.
            ns.ip(&["addr", "add", &format!("{v6}/64"), "dev", ifname, "nodad"]);
            ns.ip(&["link", "set", ifname, "up"]);
        }
        // With offload on, veth hands over queries with partial UDP checksums; XDP_TX replies built from
        // them are dropped as corrupt. Real NICs deliver full checksums.
        crate::run_ok(net.cli.command("ethtool").args(["-K", CLI_IF, "tx", "off"]));
        net
    }

    fn start_xdp_pass(&mut self) {
        let bin = testbed_bin();
        let child = self
            .cli
            .command(bin.to_str().expect("UTF-8 binary path"))
            .args(["xdp-pass", "--iface", CLI_IF])
            .stdout(Stdio::null())
            .stderr(Stdio::piped()) // read only when it exits early; it logs a line or two
            .spawn()
            .unwrap_or_else(|e| panic!("starting {} xdp-pass: {e}", bin.display()));
        self.xdp_pass = Some(child);
        let attached = wait_for(XDP_PASS_DEADLINE, Duration::from_millis(50), || {
            if let Some(status) = self.xdp_pass.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                let mut err = String::new();
                if let Some(mut pipe) = self.xdp_pass.as_mut().and_then(|c| c.stderr.take()) {
                    let _ = std::io::Read::read_to_string(&mut pipe, &mut err);
                }
                panic!("`dns-xdp-testbed xdp-pass --iface {CLI_IF}` exited early ({status}): {err}");
            }
            self.cli.has_xdp_program(CLI_IF).then_some(())
        });
        assert!(attached.is_some(), "xdp-pass attached nothing to {CLI_IF} within {XDP_PASS_DEADLINE:?}");
    }

    pub fn srv_addr(&self, family: Family) -> IpAddr {
        match family {
            Family::V4 => self.srv_v4.into(),
            Family::V6 => self.srv_v6.into(),
        }
    }

    /// `kdig @<server> ARGS` from the client namespace, with a short timeout and no retries so that
    /// one query is one packet (tests count packets).
    pub fn kdig(&self, family: Family, args: &[&str]) -> DigOutput {
        let server = format!("@{}", self.srv_addr(family));
        DigOutput::run(self.cli.command("kdig").args([server.as_str(), "+timeout=2", "+retry=0"]).args(args))
    }

    /// `dig @<server> ARGS` from the client namespace (dig keeps the case of the name it sends).
    pub fn dig(&self, family: Family, args: &[&str]) -> DigOutput {
        let server = format!("@{}", self.srv_addr(family));
        DigOutput::run(self.cli.command("dig").args([server.as_str(), "+time=2", "+tries=1"]).args(args))
    }
}

impl Default for TestNet {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for TestNet {
    fn drop(&mut self) {
        if let Some(mut helper) = self.xdp_pass.take() {
            stop(&mut helper, Duration::from_secs(3));
        }
        // The Netns fields drop next: deleting them removes the veth pair and its XDP programs.
    }
}

/// Address family of the server address a client queries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    V4,
    V6,
}

impl Family {
    pub const BOTH: [Family; 2] = [Family::V4, Family::V6];
}
