//! The man pages and shell completions the Debian package installs (`dns-xdp generate-docs DIR`,
//! run by `cargo xtask deb`), generated from the clap definitions so they cannot drift from
//! `--help`: `DIR/man/dns-xdp.8` plus one page per subcommand (`dns-xdp-serve.8`, ...), and
//! `DIR/completions/` for bash, zsh and fish.

use std::path::{Path, PathBuf};

use clap::CommandFactory as _;
use clap_complete::Shell;

use crate::config::Cli;

/// Section 8: system administration commands (a daemon run as root or by the service manager).
const SECTION: &str = "8";

/// `dns-xdp generate-docs`.
#[derive(clap::Args, Debug)]
pub struct GenerateDocsArgs {
    /// Directory to write `man/` and `completions/` into.
    pub dir: PathBuf,
}

/// Writes every page and completion file; the paths written.
pub fn generate(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let (man, completions) = (dir.join("man"), dir.join("completions"));
    std::fs::create_dir_all(&man)?;
    std::fs::create_dir_all(&completions)?;
    let mut cmd = Cli::command().disable_help_subcommand(true);
    cmd.build();
    let mut written = Vec::new();
    pages(cmd.clone(), &man, &mut written)?;
    for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
        written.push(clap_complete::generate_to(shell, &mut cmd, "dns-xdp", &completions)?);
    }
    Ok(written)
}

/// The page of `cmd` and of each visible subcommand, recursively (`dns-xdp-ctl-zone.8`).
fn pages(cmd: clap::Command, dir: &Path, written: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()).cloned() {
        pages(sub, dir, written)?;
    }
    written.push(clap_mangen::Man::new(cmd).section(SECTION).generate_to(dir)?);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_per_subcommand_and_three_shells() {
        let dir = std::env::temp_dir().join(format!("dnsxdp-docs-{}", std::process::id()));
        let written = generate(&dir).unwrap();
        let names: Vec<String> =
            written.iter().map(|p| p.file_name().unwrap().to_string_lossy().into_owned()).collect();
        for want in ["dns-xdp.8", "dns-xdp-serve.8", "dns-xdp-check.8", "dns-xdp-ctl.8", "dns-xdp.bash", "_dns-xdp"] {
            assert!(names.iter().any(|n| n == want), "{want} missing from {names:?}");
        }
        assert!(!names.iter().any(|n| n.contains("generate-docs")), "hidden commands get no page: {names:?}");
        let serve = std::fs::read_to_string(dir.join("man/dns-xdp-serve.8")).unwrap();
        assert!(serve.contains("\\-\\-source"), "the serve page lists its flags");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
