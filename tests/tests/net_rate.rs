//! `chaos net rate`: a real TCP transfer through an EDT rate limit. Needs fq, so it runs in the
//! Debian VMs (cargo xtask vm); here it checks the clear refusal.

use chaos_tests::{Running, kernel_has, lab::Lab};
use std::{
    io::{BufRead, BufReader},
    process::{Command, Stdio},
};

/// Accepts one connection on 10.77.0.2:7400, reads to EOF; prints bytes and the seconds from the
/// first byte to the last.
const RECEIVE: &str = r#"
import socket, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("10.77.0.2", 7400)); s.listen(1)
print("ready", flush=True)
c, _ = s.accept()
n, t0 = 0, None
while True:
    d = c.recv(65536)
    if not d: break
    if t0 is None: t0 = time.monotonic()
    n += len(d)
print(n, time.monotonic() - t0, flush=True)
"#;

const SEND: &str = r#"
import socket, sys
c = socket.create_connection(("10.77.0.2", 7400))
c.sendall(b"x" * int(sys.argv[1])); c.close()
"#;

/// Goodput in bits per second of one transfer of `bytes` from the client namespace.
fn transfer(lab: &Lab, bytes: u64) -> f64 {
    let mut rx = Command::new("nsenter")
        .arg(format!("--net=/run/netns/{}", lab.sb.server_ns))
        .args(["python3", "-c", RECEIVE])
        .stdout(Stdio::piped())
        .spawn()
        .expect("receiver");
    let mut out = BufReader::new(rx.stdout.take().expect("stdout"));
    let mut line = String::new();
    out.read_line(&mut line).expect("ready");
    let sent = lab
        .inside("python3")
        .args(["-c", SEND, &bytes.to_string()])
        .status()
        .expect("sender");
    assert!(sent.success());
    line.clear();
    out.read_line(&mut line).expect("result");
    rx.wait().expect("receiver");
    let v: Vec<f64> = line
        .split_whitespace()
        .map(|x| x.parse().expect("number"))
        .collect();
    assert_eq!(v[0] as u64, bytes, "everything arrived");
    v[0] * 8.0 / v[1]
}

/// `chaos net rate --rate 8mbit` for TCP to port 7400 on `iface` in `ns` (plus `extra`): a 2 MB
/// transfer gets 90-102 % of the limit in goodput (the limit counts whole packets). Where the
/// kernel has no fq, checks the clear refusal instead and returns None.
fn limited_transfer(lab: &Lab, iface: &str, ns: &str, extra: &[&str], test: &str) -> Option<f64> {
    let args = [
        &[
            "net",
            "rate",
            "--iface",
            iface,
            "--netns",
            ns,
            "--rate",
            "8mbit",
            "--protocol",
            "tcp",
            "--dport",
            "7400",
        ][..],
        extra,
    ]
    .concat();
    if !kernel_has("fq", test) {
        let (code, _, err) = lab.run(&[&args[..], &["--duration", "5s"]].concat());
        assert_eq!(code, 1, "{err}");
        assert!(err.contains("fq"), "{err}");
        return None;
    }
    let fault = Running::start_via(
        lab.chaos_cmd(),
        &[&args[..], &["--duration", "120s"]].concat(),
    );
    let limited = transfer(lab, 2_000_000);
    let s = fault.interrupt();
    // Arriving TCP is GRO-merged into up to 64 KB packets: 2 MB is a few dozen of them.
    assert!(s["injected"].as_u64() >= Some(20), "{s}");
    eprintln!("{test}: goodput {:.2} Mbit/s for 8mbit", limited / 1e6);
    let ratio = limited / 8e6;
    assert!(
        (0.90..=1.02).contains(&ratio),
        "goodput {:.2} Mbit/s for an 8 Mbit/s limit",
        limited / 1e6
    );
    Some(limited)
}

#[test]
fn rate_limits_a_tcp_transfer() {
    let lab = Lab::new("rate");
    let (iface, ns) = (lab.sb.client_if.clone(), lab.sb.client_ns.clone());
    if let Some(limited) = limited_transfer(&lab, &iface, &ns, &[], "rate_limits_a_tcp_transfer") {
        let free = transfer(&lab, 2_000_000);
        assert!(
            free > 3.0 * limited,
            "after the fault: {:.1} Mbit/s",
            free / 1e6
        );
    }
    lab.finish();
}

/// --direction ingress: the receiver's download is limited through an ifb device (the
/// interface's own qdisc untouched, the ifb gone afterwards).
#[test]
fn rate_limits_arriving_traffic() {
    let lab = Lab::new("ratei");
    let (iface, ns) = (lab.sb.server_if.clone(), lab.sb.server_ns.clone());
    let ingress = ["--direction", "ingress"];
    limited_transfer(&lab, &iface, &ns, &ingress, "rate_limits_arriving_traffic");
    let links = chaos_tests::sh(Command::new("ip").args(["-n", &ns, "-o", "link", "show"]));
    assert!(!links.contains(": chaos"), "ifb deleted: {links}");
    lab.finish();
}
