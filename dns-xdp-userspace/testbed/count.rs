//! `dns-xdp-testbed xdp-count`: the client end of `cargo xtask bench`'s load generator. Attaches
//! `xdp_count` (dns-xdp-ebpf/src/testbed/count.rs), which counts DNS replies in the kernel and
//! drops all but a sample, then answers each line read on stdin with the counters summed over
//! CPUs: `replies <n> sampled <n> other <n>`. Exits (detaching the program) at end of input.

use std::io::{BufRead as _, Write as _};

use anyhow::Context as _;
use aya::Ebpf;
use aya::maps::{Array, MapData, PerCpuArray};
use aya::programs::XdpMode;
use dns_xdp_common::count;

/// `dns-xdp-testbed xdp-count`.
#[derive(clap::Args, Debug)]
pub(crate) struct CountArgs {
    /// Interface to attach to (native mode).
    #[arg(long)]
    iface: String,
    /// Replies whose DNS ID ANDed with this mask is zero pass to the stack as the sample (0: all of them).
    #[arg(long, default_value_t = 63)]
    sample_mask: u16,
}

/// The attached program and its counters; detached when dropped.
struct Counter {
    _ebpf: Ebpf,
    counts: PerCpuArray<MapData, u64>,
}

impl Counter {
    fn attach(args: &CountArgs) -> anyhow::Result<Self> {
        let mut ebpf = crate::load_object()?;
        let mut config: Array<_, u32> =
            Array::try_from(ebpf.map_mut(count::MAP_COUNT_CONFIG).context("no COUNT_CONFIG map")?)?;
        config.set(0, u32::from(args.sample_mask), 0).context("setting the sample mask")?;
        let counts = PerCpuArray::try_from(ebpf.take_map(count::MAP_COUNTS).context("no COUNTS map")?)?;
        crate::program(&mut ebpf, count::PROG_NAME)?
            .attach(&args.iface, XdpMode::Driver)
            .with_context(|| format!("attaching xdp_count to {}", args.iface))?;
        Ok(Counter { _ebpf: ebpf, counts })
    }

    /// (replies, sampled, other), summed over CPUs.
    fn read(&self) -> anyhow::Result<[u64; 3]> {
        let mut out = [0; 3];
        for (slot, v) in [count::REPLIES, count::SAMPLED, count::OTHER].into_iter().zip(out.iter_mut()) {
            *v = self.counts.get(&slot, 0).context("reading COUNTS")?.iter().sum();
        }
        Ok(out)
    }
}

/// Attach, say `ready`, then answer every stdin line with the counters until end of input.
pub(crate) fn run(args: &CountArgs) -> anyhow::Result<()> {
    let counter = Counter::attach(args)?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "ready")?;
    out.flush()?;
    for line in std::io::stdin().lock().lines() {
        line?;
        let [replies, sampled, other] = counter.read()?;
        writeln!(out, "replies {replies} sampled {sampled} other {other}")?;
        out.flush()?;
    }
    Ok(())
}
