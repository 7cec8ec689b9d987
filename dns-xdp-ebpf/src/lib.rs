// Empty library target: dns-xdp-userspace lists this crate as a build-dependency so cargo rebuilds
// the embedded eBPF object whenever the kernel code changes.
#![no_std]
