//! `cargo xtask deb`: the Debian package `target/debian/dns-xdp_<version>_<arch>.deb`, staged here
//! and built with `dpkg-deb --root-owner-group` (no cargo-deb to install: CI builds it in seconds
//! from the release binary `cargo xtask build` or `test` already made). The maintainer scripts,
//! the unit and the example configuration live in `packaging/debian/`; the man pages and shell
//! completions come from the binary's own clap definitions (`dns-xdp generate-docs`).

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, bail};

use crate::cmd;

/// Files under /etc the administrator edits: dpkg keeps their edits on upgrade and removes them
/// only on purge.
const CONFFILES: &[&str] = &["/etc/dns-xdp/dns-xdp.toml", "/etc/dns-xdp/example.com.zone"];

/// Builds the package from `target/release/dns-xdp`; its path.
pub fn package() -> Result<PathBuf> {
    let root = cmd::repo_root();
    let bin = root.join("target/release/dns-xdp");
    if !bin.is_file() {
        bail!("{} is missing: run `cargo xtask build` first", bin.display());
    }
    let version = version(&bin)?;
    let arch = String::from_utf8(cmd::output(cmd::command("dpkg").arg("--print-architecture"))?.stdout)?;
    let arch = arch.trim();
    let out_dir = root.join("target/debian");
    let stage = out_dir.join("stage");
    if stage.exists() {
        std::fs::remove_dir_all(&stage).with_context(|| format!("removing {}", stage.display()))?;
    }
    let src = root.join("packaging/debian");
    let docs = out_dir.join("docs");
    cmd::run(cmd::command(bin.to_str().expect("UTF-8 path")).arg("generate-docs").arg(&docs))?;

    put(&bin, &stage.join("usr/sbin/dns-xdp"), 0o755)?;
    for page in std::fs::read_dir(docs.join("man"))? {
        let page = page?.path();
        let dest = stage.join("usr/share/man/man8").join(page.file_name().expect("a file"));
        put(&page, &dest, 0o644)?;
        // -n: no name or time stamp in the header, so the package is reproducible.
        cmd::run(cmd::command("gzip").args(["-9n"]).arg(&dest))?;
    }
    let completions = docs.join("completions");
    put(&completions.join("dns-xdp.bash"), &stage.join("usr/share/bash-completion/completions/dns-xdp"), 0o644)?;
    put(&completions.join("_dns-xdp"), &stage.join("usr/share/zsh/vendor-completions/_dns-xdp"), 0o644)?;
    put(&completions.join("dns-xdp.fish"), &stage.join("usr/share/fish/vendor_completions.d/dns-xdp.fish"), 0o644)?;
    put(&src.join("dns-xdp.toml"), &stage.join("etc/dns-xdp/dns-xdp.toml"), 0o644)?;
    put(&root.join("examples/example.com.zone"), &stage.join("etc/dns-xdp/example.com.zone"), 0o644)?;
    put(&src.join("dns-xdp.service"), &stage.join("lib/systemd/system/dns-xdp.service"), 0o644)?;
    put(&src.join("copyright"), &stage.join("usr/share/doc/dns-xdp/copyright"), 0o644)?;
    for script in ["postinst", "prerm", "postrm"] {
        put(&src.join(script), &stage.join("DEBIAN").join(script), 0o755)?;
    }
    write(&stage.join("DEBIAN/conffiles"), &(CONFFILES.join("\n") + "\n"))?;
    write(&stage.join("DEBIAN/control"), &control(&version, arch, installed_kib(&stage)?))?;

    let deb = out_dir.join(format!("dns-xdp_{version}_{arch}.deb"));
    cmd::run(cmd::command("dpkg-deb").args(["--root-owner-group", "-Zxz", "--build"]).arg(&stage).arg(&deb))?;
    println!("built {}", deb.display());
    Ok(deb)
}

/// The version `dns-xdp --version` prints ("dns-xdp 0.1.0").
fn version(bin: &Path) -> Result<String> {
    let out = String::from_utf8(cmd::output(cmd::command(bin.to_str().expect("UTF-8 path")).arg("--version"))?.stdout)?;
    match out.trim().split_once(' ') {
        Some(("dns-xdp", v)) if !v.is_empty() => Ok(v.to_string()),
        _ => bail!("unexpected `dns-xdp --version` output {out:?}"),
    }
}

/// DEBIAN/control. Depends: what `ldd dns-xdp` shows (libc and libm are libc6, libgcc_s is
/// libgcc-s1) and adduser for postinst.
fn control(version: &str, arch: &str, installed_kib: u64) -> String {
    format!(
        "Package: dns-xdp
Version: {version}
Architecture: {arch}
Maintainer: dns-xdp developers <dev@dns-xdp.invalid>
Installed-Size: {installed_kib}
Depends: libc6, libgcc-s1, adduser
Section: net
Priority: optional
Description: authoritative DNS server with an XDP fast path
 dns-xdp answers the hot queries of its zones inside the kernel (XDP), before the
 network stack, and everything else from a daemon with full zone logic. It
 replicates zones with AXFR/IXFR and NOTIFY, has an HTTP control API with quorum
 confirmation, and is controlled with `dns-xdp ctl`.
"
    )
}

/// Installed-Size: the staged files' sizes in KiB, rounded up.
fn installed_kib(dir: &Path) -> Result<u64> {
    let mut bytes = 0;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let meta = entry.metadata()?;
        if entry.file_name() == "DEBIAN" {
            continue;
        }
        bytes += if meta.is_dir() { installed_kib(&entry.path())? * 1024 } else { meta.len().div_ceil(1024) * 1024 };
    }
    Ok(bytes / 1024)
}

/// Copies `from` to `to` (creating its directory) with `mode`.
fn put(from: &Path, to: &Path, mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::create_dir_all(to.parent().expect("a parent"))?;
    std::fs::copy(from, to).with_context(|| format!("copying {} to {}", from.display(), to.display()))?;
    std::fs::set_permissions(to, std::fs::Permissions::from_mode(mode))?;
    Ok(())
}

fn write(path: &Path, text: &str) -> Result<()> {
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_names_the_package_and_its_dependencies() {
        let c = control("0.1.0", "amd64", 12345);
        assert!(c.starts_with("Package: dns-xdp\nVersion: 0.1.0\nArchitecture: amd64\n"), "{c}");
        assert!(c.contains("Depends: libc6, libgcc-s1, adduser\n"), "{c}");
        // dpkg wants every description line after the first indented by one space.
        assert!(c.lines().skip_while(|l| !l.starts_with("Description:")).skip(1).all(|l| l.starts_with(' ')));
    }

    #[test]
    fn the_packaged_files_exist() {
        let src = cmd::repo_root().join("packaging/debian");
        for f in ["dns-xdp.toml", "dns-xdp.service", "copyright", "postinst", "prerm", "postrm"] {
            assert!(src.join(f).is_file(), "packaging/debian/{f} missing");
        }
        let unit = std::fs::read_to_string(src.join("dns-xdp.service")).unwrap();
        for line in ["Type=notify", "ExecReload=/bin/kill -HUP $MAINPID", "StateDirectory=dns-xdp"] {
            assert!(unit.lines().any(|l| l == line), "the unit lacks {line}");
        }
    }
}
