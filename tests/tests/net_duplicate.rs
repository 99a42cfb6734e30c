//! `chaos net duplicate`: the receiver sees each matching datagram twice, and the copy is not
//! duplicated again when it passes the hook (no clone loop).

use chaos_tests::{Running, assert_programs_gone, lab::Lab, stats::binomial_999};
use std::{
    io::{BufRead, BufReader},
    process::{Command, Stdio},
};

const N: u32 = 300;

/// Counts datagrams until 1 s of silence; prints "TOTAL DISTINCT".
const RECEIVE: &str = r#"
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("10.77.0.2", 9000)); s.settimeout(1.0)
print("ready", flush=True)
total, seen = 0, set()
try:
    while True:
        seen.add(s.recv(64)); total += 1
except socket.timeout:
    pass
print(total, len(seen))
"#;

const SEND: &str = r#"
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for i in range(int(sys.argv[1])):
    s.sendto(str(i).encode(), ("10.77.0.2", 9000)); time.sleep(0.001)
"#;

/// Sends N datagrams from the client namespace; returns (received, distinct) at the server.
fn exchange(lab: &Lab) -> (u64, u64) {
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
        .outside("python3")
        .args(["-c", SEND, &N.to_string()])
        .status()
        .expect("sender");
    assert!(sent.success());
    line.clear();
    out.read_line(&mut line).expect("counts");
    rx.wait().expect("receiver exit");
    let n: Vec<u64> = line
        .split_whitespace()
        .map(|x| x.parse().expect("count"))
        .collect();
    (n[0], n[1])
}

#[test]
fn duplicates_reach_the_receiver_once_more_each() {
    let lab = Lab::new("dup");
    let filter = ["--protocol", "udp", "--dport", "9000", "--duration", "60s"];
    assert_eq!(exchange(&lab), (N as u64, N as u64), "baseline");

    // 100 % at the receiver's ingress: every datagram arrives twice.
    let args = [
        &[
            "net",
            "duplicate",
            "--iface",
            &lab.sb.server_if,
            "--netns",
            &lab.sb.server_ns,
            "--direction",
            "ingress",
        ][..],
        &filter[..],
    ]
    .concat();
    let fault = Running::start(&args);
    let (total, distinct) = exchange(&lab);
    let ids = fault.program_ids.clone();
    let s = fault.interrupt();
    assert_eq!((total, distinct), (2 * N as u64, N as u64), "{s}");
    assert_eq!(s["injected"], N, "{s}");
    assert_programs_gone(&ids);

    // 30 % at the sender's egress: the extra copies follow the probability.
    let args = [
        &[
            "net",
            "duplicate",
            "--iface",
            &lab.sb.client_if,
            "--netns",
            &lab.sb.client_ns,
            "--direction",
            "egress",
            "--percent",
            "30",
        ][..],
        &filter[..],
    ]
    .concat();
    let fault = Running::start(&args);
    let (total, distinct) = exchange(&lab);
    let s = fault.interrupt();
    let extra = total - N as u64;
    let (lo, hi) = binomial_999(N as u64, 0.3);
    assert_eq!(distinct, N as u64);
    assert!(
        (lo..=hi).contains(&extra),
        "{extra} copies for {N}, expected {lo}..={hi}"
    );
    assert_eq!(s["injected"], extra, "{s}");
    assert_eq!(exchange(&lab), (N as u64, N as u64), "after chaos");
    lab.finish();
}
