//! Toolchain bootstrap: nightly, its rust-src, and bpf-linker 0.13 linked against the nightly's LLVM.
//!
//! Each step checks first and does nothing when already done, so calling `ensure` on every build is cheap.
//! Why bpf-linker needs the nightly's own LLVM: Debian ships only LLVM 14/15, and bpf-linker's default
//! feature targets LLVM 23 (ARCHITECTURE.md section 5).

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, bail};

use crate::cmd;

/// The bpf-linker release known to work with aya-build 0.2 and LLVM 22.
const BPF_LINKER_VERSION: &str = "0.13.0";
/// The cargo feature of bpf-linker matching the nightly's LLVM major version.
const BPF_LINKER_LLVM_FEATURE: &str = "llvm-22";

/// Make sure nightly, rust-src and bpf-linker are present; install what is missing.
pub fn ensure() -> Result<()> {
    ensure_nightly()?;
    let sysroot = nightly_sysroot()?;
    ensure_rust_src(&sysroot)?;
    ensure_bpf_linker(&sysroot)
}

fn ensure_nightly() -> Result<()> {
    let probe = cmd::output(cmd::command("rustc").args(["+nightly", "--version"]));
    if probe.is_ok_and(|o| o.status.success()) {
        return Ok(());
    }
    eprintln!("xtask: nightly toolchain missing, installing it");
    let mut install = cmd::command("rustup");
    install.args(["toolchain", "install", "nightly", "--profile", "minimal"]);
    cmd::run(&mut install)
        .with_context(|| format!("installing the nightly toolchain failed; run by hand: {}", cmd::render(&install)))
}

fn nightly_sysroot() -> Result<PathBuf> {
    let mut c = cmd::command("rustc");
    c.args(["+nightly", "--print", "sysroot"]);
    let out = cmd::output(&mut c)?;
    if !out.status.success() {
        bail!(
            "`{}` failed: {}; is rustup installed and the nightly toolchain present?",
            cmd::render(&c),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(PathBuf::from(String::from_utf8(out.stdout).context("sysroot path is not UTF-8")?.trim()))
}

fn ensure_rust_src(sysroot: &Path) -> Result<()> {
    if sysroot.join("lib/rustlib/src").is_dir() {
        return Ok(());
    }
    eprintln!("xtask: rust-src missing for nightly (needed by -Z build-std), adding it");
    let mut add = cmd::command("rustup");
    add.args(["component", "add", "rust-src", "--toolchain", "nightly"]);
    cmd::run(&mut add).with_context(|| format!("adding rust-src failed; run by hand: {}", cmd::render(&add)))
}

/// True when `bpf-linker --version` runs (its libLLVM resolves) and reports the wanted release.
fn bpf_linker_ok() -> bool {
    let Ok(out) = cmd::output(cmd::command("bpf-linker").arg("--version")) else {
        return false;
    };
    out.status.success() && version_matches(&String::from_utf8_lossy(&out.stdout))
}

/// `bpf-linker 0.13.0` -> accepted; any other 0.x.y release is not.
fn version_matches(version_output: &str) -> bool {
    let wanted_minor = BPF_LINKER_VERSION.rsplit_once('.').map_or(BPF_LINKER_VERSION, |(mm, _)| mm);
    version_output
        .split_whitespace()
        .nth(1)
        .is_some_and(|v| v == wanted_minor || v.starts_with(&format!("{wanted_minor}.")))
}

/// The nightly's shared LLVM, e.g. `lib/libLLVM.so.22.1-rust-1.97.0-nightly`.
fn nightly_libllvm(sysroot: &Path) -> Result<PathBuf> {
    let lib = sysroot.join("lib");
    let mut found: Vec<PathBuf> = std::fs::read_dir(&lib)
        .with_context(|| format!("reading {}", lib.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("libLLVM.so.")))
        .collect();
    found.sort();
    found.pop().with_context(|| {
        format!(
            "no libLLVM.so.* in {}; reinstall the nightly toolchain (`rustup toolchain install nightly`) \
             or add its llvm-tools component",
            lib.display()
        )
    })
}

fn ensure_bpf_linker(sysroot: &Path) -> Result<()> {
    if bpf_linker_ok() {
        return Ok(());
    }
    eprintln!("xtask: installing bpf-linker {BPF_LINKER_VERSION} against the nightly's LLVM (about a minute)");
    let libllvm = nightly_libllvm(sysroot)?;
    // bpf-linker's build script looks for `$LLVM_PREFIX/lib/libLLVM.so`: give it a folder with just that.
    let prefix = cmd::repo_root().join("target/llvm-nightly");
    let link = prefix.join("lib/libLLVM.so");
    std::fs::create_dir_all(prefix.join("lib"))
        .with_context(|| format!("creating {}", prefix.join("lib").display()))?;
    if link.symlink_metadata().is_ok() {
        std::fs::remove_file(&link).with_context(|| format!("removing stale {}", link.display()))?;
    }
    std::os::unix::fs::symlink(&libllvm, &link)
        .with_context(|| format!("symlinking {} -> {}", link.display(), libllvm.display()))?;

    let lib_dir = sysroot.join("lib");
    let mut install = cmd::cargo();
    install
        .args(["install", "bpf-linker", "--version", BPF_LINKER_VERSION])
        .args(["--no-default-features", "--features", BPF_LINKER_LLVM_FEATURE])
        .env("LLVM_PREFIX", &prefix)
        // Bake the library path in so bpf-linker runs with no LD_LIBRARY_PATH.
        .env("RUSTFLAGS", format!("-C link-arg=-Wl,-rpath,{}", lib_dir.display()))
        // Build with the default toolchain even when we were started through `cargo +something`.
        .env_remove("RUSTUP_TOOLCHAIN");
    let by_hand = format!(
        "LLVM_PREFIX={} RUSTFLAGS='-C link-arg=-Wl,-rpath,{}' cargo install bpf-linker --version {} \
         --no-default-features --features {}",
        prefix.display(),
        lib_dir.display(),
        BPF_LINKER_VERSION,
        BPF_LINKER_LLVM_FEATURE
    );
    cmd::run(&mut install).with_context(|| format!("building bpf-linker failed; run by hand: {by_hand}"))?;
    if !bpf_linker_ok() {
        bail!(
            "bpf-linker was installed into {} but `bpf-linker --version` does not run or report {}; \
             check `ldd $(which bpf-linker)` and retry by hand: {by_hand}",
            cmd::cargo_bin_dir().display(),
            BPF_LINKER_VERSION
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_only_the_pinned_minor_release() {
        assert!(version_matches("bpf-linker 0.13.0\n"));
        assert!(version_matches("bpf-linker 0.13.2"));
        assert!(!version_matches("bpf-linker 0.9.13"));
        assert!(!version_matches("bpf-linker 0.130.0"));
        assert!(!version_matches("bpf-linker 1.13.0"));
        assert!(!version_matches(""));
    }

    #[test]
    fn finds_the_nightly_libllvm_when_nightly_is_installed() {
        let Ok(sysroot) = nightly_sysroot() else {
            eprintln!("skipped: no nightly toolchain");
            return;
        };
        let lib = nightly_libllvm(&sysroot).expect("nightly ships libLLVM");
        assert!(lib.file_name().unwrap().to_str().unwrap().starts_with("libLLVM.so."));
    }
}
