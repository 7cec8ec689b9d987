//! Code generation options for bpf-linker, which compiles the program (rustc hands it bitcode).
//!
//! `allows-misaligned-mem-access` (LLVM 22): an unaligned load or store of a word is one
//! instruction, not a byte at a time. Packet data has no alignment, and the program copies
//! qnames and answers a word at a time with direct packet access instead of helper calls,
//! which cost 40-50 ns each on a kernel with return-thunk mitigations (cursor.rs). The
//! verifier accepts misaligned packet and map accesses on x86 (no strict alignment), never on
//! the stack, so byte arrays on the stack must not be read as words (dns.rs, respond.rs).

fn main() {
    if std::env::var("CARGO_CFG_TARGET_ARCH").as_deref() == Ok("bpf") {
        println!("cargo:rustc-link-arg=--cpu-features=+allows-misaligned-mem-access");
    }
    println!("cargo:rerun-if-changed=build.rs");
}
