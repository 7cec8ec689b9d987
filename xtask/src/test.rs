//! `cargo xtask test`: every unit and integration test, against the freshly built release binary.

use anyhow::{Result, bail};

use crate::cmd;

/// Programs the integration tests run, and the Debian packages that provide them.
const TOOLS: &[&str] = &["kdig", "dig", "knotd", "ip", "ethtool", "curl", "openssl"];
const APT_INSTALL: &str = "apt-get install -y knot-dnsutils bind9-dnsutils knot iproute2 ethtool curl openssl";

/// Host-buildable crates; dns-xdp-ebpf only builds for bpfel-unknown-none (via the userspace build.rs).
const TEST_PACKAGES: &[&str] = &["dns-xdp-common", "dns-xdp-userspace", "xtask", "dns-xdp-tests"];

pub fn run(extra: &[String]) -> Result<()> {
    let missing = missing_tools(TOOLS);
    if !missing.is_empty() {
        bail!("the integration tests need {} (not on PATH); install with: {APT_INSTALL}", missing.join(", "));
    }
    crate::build()?;
    // The package test (tests/tests/deb.rs) installs this: built here, since cargo test holds
    // the build lock a nested `cargo xtask deb` would wait on. Without dpkg (not Debian) that
    // test reports itself skipped, or fails under CI.
    let deb = if cmd::on_path("dpkg-deb") { Some(crate::deb::package()?) } else { None };
    let root = cmd::repo_root();
    let bin = root.join("target/release/dns-xdp");
    let mut test = cmd::cargo();
    // --no-fail-fast: one failing test binary must not hide the results of the others.
    test.current_dir(&root).args(["test", "--release", "--no-fail-fast"]);
    for p in TEST_PACKAGES {
        test.args(["-p", p]);
    }
    test.args(extra).env("DNS_XDP_BIN", &bin).env("DNS_XDP_ROOT", &root);
    if let Some(deb) = deb {
        test.env("DNS_XDP_DEB", deb);
    }
    cmd::run(&mut test)
}

fn missing_tools<'a>(tools: &[&'a str]) -> Vec<&'a str> {
    // Tools in /usr/sbin may be missing from a non-root user's PATH.
    let sbin = |t: &str| ["/usr/sbin", "/sbin"].iter().any(|d| std::path::Path::new(d).join(t).is_file());
    tools.iter().copied().filter(|t| !cmd::on_path(t) && !sbin(t)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_only_missing_tools() {
        assert_eq!(missing_tools(&["sh", "no-such-tool-dnsxdp"]), vec!["no-such-tool-dnsxdp"]);
    }

    #[test]
    fn never_tests_the_kernel_crate_on_the_host() {
        assert!(!TEST_PACKAGES.contains(&"dns-xdp-ebpf"));
    }
}
