//! Running child processes with a PATH that reaches `~/.cargo/bin`, and errors that say what to retry.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use anyhow::{Context as _, Result, bail};

/// The workspace root (xtask lives one level below it).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("xtask has a parent directory").to_path_buf()
}

/// The test bed's XDP helpers (`dns-xdp-testbed xdp-pass|bounce|xdp-count`), which the same
/// `cargo build` puts beside the daemon binary `dns_xdp`.
pub fn testbed_beside(dns_xdp: &Path) -> PathBuf {
    dns_xdp.with_file_name("dns-xdp-testbed")
}

/// `$CARGO_HOME/bin`, defaulting to `~/.cargo/bin`, where rustup and `cargo install` put binaries.
pub fn cargo_bin_dir() -> PathBuf {
    if let Some(home) = std::env::var_os("CARGO_HOME") {
        return PathBuf::from(home).join("bin");
    }
    let home = std::env::var_os("HOME").unwrap_or_else(|| "/root".into());
    PathBuf::from(home).join(".cargo").join("bin")
}

/// PATH with the cargo bin dir first, so children find bpf-linker even from a bare shell.
pub fn path_env() -> OsString {
    let old = std::env::var_os("PATH").unwrap_or_default();
    let mut dirs = vec![cargo_bin_dir()];
    dirs.extend(std::env::split_paths(&old).filter(|d| *d != cargo_bin_dir()));
    std::env::join_paths(dirs).expect("PATH entries contain no separator")
}

/// A command with our PATH.
pub fn command(program: &str) -> Command {
    let mut c = Command::new(program);
    c.env("PATH", path_env());
    c
}

/// `cargo`, preferring the one that runs us (cargo sets `$CARGO`).
pub fn cargo() -> Command {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    command(&cargo)
}

/// Shell-like rendering of a command for error messages.
pub fn render(c: &Command) -> String {
    let mut s = c.get_program().to_string_lossy().into_owned();
    for a in c.get_args() {
        let a = a.to_string_lossy();
        if a.is_empty() || a.contains(|ch: char| ch.is_whitespace() || "\"'$".contains(ch)) {
            s.push_str(&format!(" '{a}'"));
        } else {
            s.push(' ');
            s.push_str(&a);
        }
    }
    s
}

/// Run with inherited stdio; fail with the command line when it does not exit 0.
pub fn run(c: &mut Command) -> Result<()> {
    let status = c.status().with_context(|| format!("could not start `{}`", render(c)))?;
    if !status.success() {
        bail!("`{}` failed ({status})", render(c));
    }
    Ok(())
}

/// Run and capture output; `Err` only when the program cannot be started.
pub fn output(c: &mut Command) -> Result<Output> {
    c.output().with_context(|| format!("could not start `{}`", render(c)))
}

/// Whether `program` is found on our PATH.
pub fn on_path(program: &str) -> bool {
    std::env::split_paths(&path_env()).any(|d| d.join(program).is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_env_puts_cargo_bin_first_once() {
        let dirs: Vec<_> = std::env::split_paths(&path_env()).collect();
        assert_eq!(dirs[0], cargo_bin_dir());
        assert_eq!(dirs.iter().filter(|d| **d == cargo_bin_dir()).count(), 1);
    }

    #[test]
    fn render_quotes_arguments_with_spaces() {
        let mut c = Command::new("echo");
        c.args(["a b", "c"]);
        assert_eq!(render(&c), "echo 'a b' c");
    }

    #[test]
    fn repo_root_holds_the_workspace_manifest() {
        assert!(repo_root().join("Cargo.toml").is_file());
        assert!(repo_root().join("xtask").is_dir());
    }
}
