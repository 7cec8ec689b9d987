fn main() {
    println!("{}", dns_xdp::EBPF_OBJECT.len());
}
