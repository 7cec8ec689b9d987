//! `dns-xdp ctl` against a running daemon, as an operator's script uses it: it finds the API and
//! token through the daemon's config file, and each outcome has its own exit code (0 done,
//! 1 refused, 4 wrong token, 5 unreachable, 64 no API configured).

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;

use dns_xdp_tests::cluster::{Node, free_port, kdig_short};
use dns_xdp_tests::{TempDir, daemon_bin, ready, which};

/// `dns-xdp ctl ARGS`: exit code, stdout, stderr.
fn ctl(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(daemon_bin()).arg("ctl").args(args).output().expect("running dns-xdp ctl");
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (out.status.code().unwrap_or(-1), text(&out.stdout), text(&out.stderr))
}

fn write_config(path: &Path, zone: &Path, api: SocketAddr, token: &Path) {
    let text = format!("zone = [{zone:?}]\napi = \"{api}\"\napi_token_file = {token:?}\n");
    std::fs::write(path, text).unwrap();
}

#[test]
fn ctl_lists_writes_reloads_and_says_what_went_wrong() {
    if !ready() {
        return;
    }
    let dir = TempDir::new();
    let zone = dir.path().join("ctl.test.zone");
    let soa = |serial: u32| {
        format!(
            "$ORIGIN ctl.test.\n$TTL 300\n@ IN SOA ns1 host {serial} 3600 2 86400 60\n  IN NS ns1\nns1 IN A 192.0.2.1\nwww IN A 192.0.2.10\n"
        )
    };
    std::fs::write(&zone, soa(1)).unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "ctl-token\n").unwrap();
    let api: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let config = dir.path().join("dns-xdp.toml");
    write_config(&config, &zone, api, &token);
    let dns: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let node = Node::start(dns, &["--config".to_string(), config.to_str().unwrap().to_string()]);
    let cfg = config.to_str().unwrap();
    let metrics = node.metrics.to_string();

    let (code, out, err) = ctl(&["--config", cfg, "zone", "list"]);
    assert_eq!((code, out.as_str()), (0, "ctl.test. 1\n"), "{err}");
    let (code, out, err) = ctl(&["--config", cfg, "rrset", "put", "ctl.test", "www", "A", "--ttl", "60", "192.0.2.99"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.starts_with("serial 2:"), "{out}");
    assert_eq!(kdig_short(dns, &["www.ctl.test", "A"]), ["192.0.2.99"]);
    let (code, out, err) = ctl(&["--config", cfg, "rrset", "get", "ctl.test", "www", "a"]);
    assert_eq!((code, out.as_str()), (0, "www.ctl.test. 60 IN A 192.0.2.99\n"), "{err}");
    let (code, out, err) = ctl(&["--config", cfg, "zone", "status", "ctl.test"]);
    assert!(code == 0 && out.starts_with("zone ctl.test. serial 2 ("), "{code} {out}{err}");

    // Reload: the file's serial 5 is newer than the served 2, so it is taken.
    std::fs::write(&zone, soa(5)).unwrap();
    let (code, out, err) = ctl(&["--config", cfg, "zone", "reload", "ctl.test"]);
    assert_eq!((code, out.as_str()), (0, "reloaded; zone ctl.test. serial 5\n"), "{err}");
    // A broken file: exit 1 with the file and line, and serial 5 keeps serving.
    std::fs::write(&zone, soa(6).replace("192.0.2.10", "192.0.2.300")).unwrap();
    let (code, _, err) = ctl(&["--config", cfg, "zone", "reload"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("ctl.test.zone:6"), "{err}");
    assert_eq!(ctl(&["--config", cfg, "zone", "list"]).1, "ctl.test. 5\n");

    // Refused, wrong token, unreachable, no API: each its own code and a message that says so.
    let (code, _, err) = ctl(&["--config", cfg, "rrset", "put", "ctl.test", "www", "A", "192.0.2.999"]);
    assert!(code == 1 && err.contains("rdata[0]"), "{code} {err}");
    let (code, _, err) = ctl(&["--config", cfg, "zone", "status", "nope.test"]);
    assert!(code == 1 && err.contains("404"), "{code} {err}");
    let wrong = dir.path().join("wrong-token");
    std::fs::write(&wrong, "nope\n").unwrap();
    let (code, _, err) = ctl(&["--config", cfg, "--token-file", wrong.to_str().unwrap(), "zone", "list"]);
    assert!(code == 4 && err.contains("401"), "{code} {err}");
    let closed = format!("127.0.0.1:{}", free_port());
    let (code, _, err) = ctl(&["--config", cfg, "--api", &closed, "zone", "list"]);
    assert!(code == 5 && err.contains("is dns-xdp running"), "{code} {err}");
    let bare = dir.path().join("bare.toml");
    std::fs::write(&bare, format!("zone = [{zone:?}]\n")).unwrap();
    let (code, _, err) = ctl(&["--config", bare.to_str().unwrap(), "zone", "list"]);
    assert!(code == 64 && err.contains("no control API"), "{code} {err}");

    let (code, out, err) = ctl(&["--config", bare.to_str().unwrap(), "--metrics", &metrics, "stats"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("dnsxdp_zone_serial{zone=\"ctl.test.\"} 5"), "{out}");
}

/// A self-signed certificate for 127.0.0.1 and localhost: (cert, key).
fn self_signed(dir: &Path, name: &str) -> (std::path::PathBuf, std::path::PathBuf) {
    let openssl = which("openssl").expect("openssl");
    let (cert, key) = (dir.join(format!("{name}.pem")), dir.join(format!("{name}.key")));
    let made = Command::new(openssl)
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "1"])
        .args(["-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"])
        .args(["-keyout", key.to_str().unwrap(), "-out", cert.to_str().unwrap()])
        .output()
        .expect("running openssl");
    assert!(made.status.success(), "openssl: {}", String::from_utf8_lossy(&made.stderr));
    (cert, key)
}

/// With `api_tls_cert` in the config, ctl talks TLS and trusts exactly that certificate.
#[test]
fn ctl_over_tls_trusts_the_apis_own_certificate() {
    if !ready() {
        return;
    }
    let dir = TempDir::new();
    let zone = dir.path().join("tls.test.zone");
    std::fs::write(
        &zone,
        "$ORIGIN tls.test.\n$TTL 300\n@ IN SOA ns1 host 3 3600 2 86400 60\n  IN NS ns1\nns1 IN A 192.0.2.1\n",
    )
    .unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "tls-token\n").unwrap();
    let (cert, key) = self_signed(dir.path(), "api");
    let api: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let config = dir.path().join("dns-xdp.toml");
    write_config(&config, &zone, api, &token);
    let tls_keys = format!("api_tls_cert = {cert:?}\napi_tls_key = {key:?}\n");
    std::fs::write(&config, std::fs::read_to_string(&config).unwrap() + &tls_keys).unwrap();
    let dns: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let _node = Node::start(dns, &["--config".to_string(), config.to_str().unwrap().to_string()]);
    let cfg = config.to_str().unwrap();

    let (code, out, err) = ctl(&["--config", cfg, "zone", "list"]);
    assert_eq!((code, out.as_str()), (0, "tls.test. 3\n"), "{err}");
    let (code, out, err) = ctl(&["--config", cfg, "--tls-name", "localhost", "zone", "list"]);
    assert_eq!((code, out.as_str()), (0, "tls.test. 3\n"), "{err}");
    // Another certificate as the only root: the API's is not trusted.
    let (other, _) = self_signed(dir.path(), "other");
    let (code, _, err) = ctl(&["--config", cfg, "--tls-ca", other.to_str().unwrap(), "zone", "list"]);
    assert!(code == 5 && err.contains("TLS"), "{code} {err}");
}
