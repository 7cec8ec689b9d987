//! dns-xdp-testbed: the test bed's own XDP programs, in an object of their own that the daemon
//! never loads (the `dns-xdp-testbed` binary attaches them): `xdp_pass` for veth peers,
//! `xdp_bounce` for the benchmark's XDP_TX ceiling, `xdp_count` for its load generator's replies.
//! They share the packet layout and the bounds-checked cursor with dns_xdp, nothing else.
#![no_std]
#![no_main]

mod bounce;
mod count;
#[path = "../cursor.rs"]
#[expect(dead_code, reason = "dns_xdp's cursor; these programs only need ptr_at")]
mod cursor;
#[path = "../headers.rs"]
mod headers;
mod plain;

use aya_ebpf::{bindings::xdp_action, macros::xdp, programs::XdpContext};

/// Does nothing. The test bed attaches it to the client end of a veth pair: veth delivers a
/// native-mode XDP_TX frame only to a peer that runs an XDP program itself.
#[xdp]
pub fn xdp_pass(_ctx: XdpContext) -> u32 {
    xdp_action::XDP_PASS
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}
