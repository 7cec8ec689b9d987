//! Reference servers (Knot DNS) in a test bed's server namespace: to check the harness itself, and to
//! compare the daemon's answers with a server we trust.

use std::path::Path;
use std::process::{Child, Stdio};
use std::time::Duration;

use crate::net::Family;
use crate::{TempDir, TestNet, stop, wait_for, which};

/// `knotd` serving one zone on the server's addresses, port 53; stopped on Drop.
pub struct Knotd<'net> {
    net: &'net TestNet,
    child: Option<Child>,
    dir: TempDir,
}

impl<'net> Knotd<'net> {
    pub fn start(net: &'net TestNet, origin: &str, zone_file: &Path) -> Self {
        let listen = format!("listen: [ \"{}@53\", \"{}@53\" ]", net.srv_v4, net.srv_v6);
        let (child, dir) = spawn_knotd(net, origin, zone_file, &listen);
        let mut k = Knotd { net, child: Some(child), dir };
        let up = wait_for(Duration::from_secs(10), Duration::from_millis(100), || {
            if let Some(status) = k.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                panic!("knotd exited during startup ({status}):\n{}", k.log());
            }
            k.net.kdig(Family::V4, &["+timeout=1", "SOA", origin]).rcode().is_some().then_some(())
        });
        assert!(up.is_some(), "knotd did not answer within 10 s:\n{}", k.log());
        k
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("knotd.log")).unwrap_or_default()
    }

    pub fn is_alive(&mut self) -> bool {
        self.child.as_mut().is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }
}

/// Starts knotd in the server namespace serving `zone_file` as `origin`, with `server_lines`
/// (indented YAML under `server:`, e.g. its `listen:`) added to the config; its log goes to
/// `knotd.log` in the returned folder. Shared by every knotd the test beds run.
pub(crate) fn spawn_knotd(net: &TestNet, origin: &str, zone_file: &Path, server_lines: &str) -> (Child, TempDir) {
    let knotd = which("knotd").expect("knotd on PATH (apt-get install knot)");
    let dir = TempDir::new();
    let conf = dir.path().join("knot.conf");
    let d = dir.path().display();
    std::fs::write(
        &conf,
        format!(
            "server:\n  rundir: \"{d}\"\n  {server_lines}\n\
             database:\n  storage: \"{d}\"\n\
             log:\n  - target: stderr\n    any: info\n\
             zone:\n  - domain: {origin}\n    file: \"{}\"\n    zonefile-sync: -1\n    journal-content: none\n",
            zone_file.display()
        ),
    )
    .expect("writing knot.conf");
    let log = std::fs::File::create(dir.path().join("knotd.log")).expect("creating knotd.log");
    let child = net
        .srv
        .command(knotd.to_str().expect("UTF-8 path"))
        .args(["-c", conf.to_str().expect("UTF-8 path")])
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("starting knotd");
    (child, dir)
}

impl Drop for Knotd<'_> {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            stop(&mut c, Duration::from_secs(5));
        }
    }
}
