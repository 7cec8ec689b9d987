//! `dns-xdp bounce` (hidden): a benchmark's ceiling. Attaches `xdp_bounce` from the embedded object,
//! which sends every DNS query straight back with XDP_TX and looks nothing up, so `cargo xtask
//! bench` can measure what the test bed carries with no server work at all (server `xdp-tx-ceiling`).

use anyhow::Context as _;
use aya::Ebpf;
use aya::programs::{Xdp, XdpMode};

/// Name of the bounce program in the object (dns-xdp-ebpf/src/bounce.rs).
pub const BOUNCE_PROG_NAME: &str = "xdp_bounce";

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum BounceMode {
    /// Driver mode: XDP_TX before the kernel allocates anything (what dns-xdp serve uses on veth).
    Native,
    /// Generic (skb) mode.
    Skb,
}

/// `dns-xdp bounce`.
#[derive(clap::Args, Debug)]
pub struct BounceArgs {
    /// Interface to attach to.
    #[arg(long)]
    pub iface: String,
    /// Attach mode.
    #[arg(long, value_enum, default_value = "native")]
    pub xdp_mode: BounceMode,
}

/// Loads the object and attaches `xdp_bounce` to the interface; detached when the value drops.
pub fn attach(args: &BounceArgs) -> anyhow::Result<Ebpf> {
    let mut ebpf = Ebpf::load(crate::EBPF_OBJECT).context("loading the eBPF object (needs root or CAP_BPF)")?;
    let program: &mut Xdp = ebpf
        .program_mut(BOUNCE_PROG_NAME)
        .context("eBPF object has no xdp_bounce program")?
        .try_into()
        .context("xdp_bounce is not an XDP program")?;
    program.load().context("the kernel verifier rejected xdp_bounce")?;
    let mode = match args.xdp_mode {
        BounceMode::Native => XdpMode::Driver,
        BounceMode::Skb => XdpMode::Skb,
    };
    program.attach(&args.iface, mode).with_context(|| format!("attaching xdp_bounce to {}", args.iface))?;
    Ok(ebpf)
}
