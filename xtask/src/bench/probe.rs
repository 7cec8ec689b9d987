//! What this kernel lets the suite run, found out before measuring: each optional tool is started for
//! real, briefly, on the bed. A refused one is reported with the tool's own line for it (for a program
//! the verifier refused, the verifier's line) and left out of the run, never faked or hidden.

use std::time::Duration;

use super::load::Tool;
use super::netbed::{self, CLI_IF, SRV_IF, SRV_V4, cli_ns, srv_ns};
use super::proc;
use super::results::Unavailable;
use super::servers::{self, Server};

/// A probe that neither works nor fails by then is taken as refused.
const PROBE_DEADLINE: Duration = Duration::from_secs(20);

/// Probe what `servers` and `loads` need that the kernel may refuse: knotd's AF_XDP mode and kxdpgun.
/// Returns what is unavailable; `bed` is left as it was found (no program on either veth end).
pub fn run(
    bed: &mut netbed::Netbed,
    servers: &[Server],
    tools: &[Tool],
    files: &super::zone::Files,
    dir: &std::path::Path,
) -> Vec<Unavailable> {
    let mut out = Vec::new();
    if servers.contains(&Server::KnotXdp)
        && let Err(reason) = knotd_xdp(bed, files, dir)
    {
        eprintln!("bench: knotd-xdp unavailable on this kernel: {reason}");
        out.push(Unavailable { what: Server::KnotXdp.name().into(), reason });
    }
    if tools.contains(&Tool::Kxdpgun)
        && let Err(reason) = kxdpgun(bed, files)
    {
        eprintln!("bench: kxdpgun unavailable on this kernel: {reason}");
        for id in ["kxdpgun-v4", "kxdpgun-v6"] {
            out.push(Unavailable { what: id.into(), reason: reason.clone() });
        }
    }
    out
}

/// knotd with `xdp: listen` must start and answer.
fn knotd_xdp(bed: &mut netbed::Netbed, files: &super::zone::Files, dir: &std::path::Path) -> Result<(), String> {
    let dir = dir.join("probe-knotd-xdp");
    let _ = bed.ensure_xdp_pass();
    let result = servers::start(Server::KnotXdp, std::path::Path::new("dns-xdp"), &files.zone, &dir);
    let log = std::fs::read_to_string(dir.join("server.log")).unwrap_or_default();
    netbed::detach_xdp(srv_ns(), SRV_IF);
    match result {
        Ok(running) => {
            running.stop();
            Ok(())
        }
        Err(e) => Err(refusal(&log).unwrap_or_else(|| format!("{e:#}").lines().next().unwrap_or_default().to_owned())),
    }
}

/// kxdpgun must start its AF_XDP socket and send (1 s at 100 q/s, nothing needs to answer).
fn kxdpgun(bed: &mut netbed::Netbed, files: &super::zone::Files) -> Result<(), String> {
    bed.release_client_xdp();
    let mut c = proc::in_netns(cli_ns(), "kxdpgun");
    c.args(["-t", "1", "-Q", "100", "-i"]).arg(&files.hits).args(["-I", CLI_IF, "-R", &bed.srv_mac, SRV_V4]);
    let result = proc::run_captured(c, PROBE_DEADLINE);
    bed.release_client_xdp();
    match result {
        Ok((status, out, err)) => {
            let text = format!("{out}\n{err}");
            // kxdpgun exits 0 even when its XDP socket fails to start.
            if status.success() && !text.contains("failed to initialize") && text.contains("total queries:") {
                Ok(())
            } else {
                Err(refusal(&text).unwrap_or_else(|| format!("kxdpgun exited with {status}")))
            }
        }
        Err(e) => Err(format!("{e:#}")),
    }
}

/// The line that says why a tool could not start: the verifier's refusal when there is one, else the
/// tool's own error line.
pub fn refusal(log: &str) -> Option<String> {
    let lines: Vec<&str> = log.lines().map(str::trim).collect();
    let verifier = ["cannot use helper", "unknown func", "invalid func", "not supported"];
    let by_verifier = lines.iter().find(|l| verifier.iter().any(|v| l.contains(v)));
    let own =
        lines.iter().find(|l| l.contains("failed to initialize") || l.starts_with("error:") || l.contains("critical:"));
    by_verifier.or(own).map(|l| (*l).to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_verifier_line_in_a_tool_log() {
        let log = "info: binding to XDP interface vps@53\n\
                   libbpf: prog 'xdp_redirect_dns_func': BPF program load failed: Invalid argument\n\
                   29: (85) call bpf_xdp_adjust_meta#54\n\
                   program of this type cannot use helper bpf_xdp_adjust_meta#54\n\
                   warning: failed to initialize XDP interface vps@53, queue 0 (program not loaded)\n";
        assert_eq!(refusal(log).as_deref(), Some("program of this type cannot use helper bpf_xdp_adjust_meta#54"));
        assert_eq!(
            refusal("error: failed to initialize XDP socket#0 (program not loaded)\n").as_deref(),
            Some("error: failed to initialize XDP socket#0 (program not loaded)")
        );
        assert_eq!(refusal("all good\n"), None);
    }
}
