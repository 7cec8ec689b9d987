use anyhow::{Context as _, anyhow};
use aya_build::{Package, Toolchain};

fn main() -> anyhow::Result<()> {
    let metadata = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .ok_or_else(|| anyhow!("manifest dir has no parent"))?
        .join("dns-xdp-ebpf");
    let root_dir = metadata.to_str().context("non-UTF-8 path to dns-xdp-ebpf")?;
    aya_build::build_ebpf([Package { name: "dns-xdp-ebpf", root_dir, ..Default::default() }], Toolchain::default())
        .context(
            "building the XDP program failed; it needs the nightly toolchain with rust-src and \
         bpf-linker on PATH: run `cargo xtask build` once, which installs both",
        )
}
