//! `chaos net reset` (Toxiproxy's reset_peer): matching TCP segments become RSTs in flight. A
//! real TCP client gets ECONNRESET within one exchange on the matching port, while a connection
//! on another port and a server outside the cgroup are untouched.
//!
//! Layout: echo servers in the lab's client namespace, two inside the cgroup (ports 7101 and
//! 7102 on its IPv4 address) and one outside it (port 7101 on its IPv6 address); the clients run
//! in the server namespace. The fault is scoped to the cgroup, so it acts at egress: what the
//! cgroup's server sends on port 7101 arrives at its client as a reset.

use chaos_tests::lab::{CLIENT_V4, CLIENT_V6, Lab, Server};
use serde_json::Value;
use std::{
    io::{BufRead, BufReader},
    process::Stdio,
};

const ECHO: &str = r#"
import socket, sys, threading
def serve(l):
    while True:
        c, _ = l.accept()
        threading.Thread(target=lambda c=c: [c.sendall(d) for d in iter(lambda: c.recv(64), b"")], daemon=True).start()
for a in sys.argv[1:]:
    host, port = a.rsplit(":", 1)
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    l = socket.socket(fam, socket.SOCK_STREAM)
    l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    l.bind((host.strip("[]"), int(port)))
    l.listen()
    threading.Thread(target=serve, args=(l,), daemon=True).start()
print("ready", flush=True)
threading.Event().wait()
"#;

/// One connection per address, an echo every 50 ms; prints "start" once connected, and ends
/// 1 s after the first connection fails (or after 60 s): per address, the error that ended it
/// (or "ok") and when, as Unix time.
const CLIENT: &str = r#"
import json, socket, sys, time
conns = []
for a in sys.argv[1:]:
    host, port = a.rsplit(":", 1)
    conns.append((a, socket.create_connection((host.strip("[]"), int(port)), timeout=2)))
print("start", flush=True)
t0 = time.time(); result = {}; first = None
while time.time() - t0 < 60 and (first is None or time.time() - first < 1):
    for a, s in conns:
        if a in result:
            continue
        try:
            s.sendall(b"x")
            if s.recv(8) != b"x":
                result[a] = ["closed", time.time()]
        except OSError as e:
            result[a] = [type(e).__name__, time.time()]
        if a in result and first is None:
            first = time.time()
    time.sleep(0.05)
print(json.dumps({a: result.get(a, ["ok", time.time()]) for a, _ in conns}), flush=True)
"#;

#[test]
fn reset_gives_the_client_econnreset_on_the_matching_port_only() {
    let lab = Lab::new("rst");
    let v4 = |p: u16| format!("{CLIENT_V4}:{p}");
    let v6 = format!("[{CLIENT_V6}]:7101");
    let mut inside = lab.inside("python3");
    inside.args(["-c", ECHO, &v4(7101), &v4(7102)]);
    let _inside = Server::start(inside, "echo servers in the cgroup");
    let mut outside = lab.outside("python3");
    outside.args(["-c", ECHO, &v6]);
    let _outside = Server::start(outside, "echo server outside the cgroup");

    let mut client = lab
        .in_server("python3")
        .args(["-c", CLIENT, &v4(7101), &v4(7102), &v6])
        .stdout(Stdio::piped())
        .spawn()
        .expect("clients");
    let mut out = BufReader::new(client.stdout.take().expect("stdout")).lines();
    assert_eq!(out.next().and_then(Result::ok).as_deref(), Some("start"));
    std::thread::sleep(std::time::Duration::from_millis(500));
    let cgroup = lab.cgroup();
    let (iface, ns) = (&lab.sb.client_if, &lab.sb.client_ns);
    let fault = lab.start(&[
        "net",
        "reset",
        "--iface",
        iface,
        "--netns",
        ns,
        "--protocol",
        "tcp",
        "--sport",
        "7101",
        "--cgroup",
        &cgroup,
        "--duration",
        "2s",
    ]);
    let attached = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs_f64();
    let line = out.next().and_then(Result::ok).expect("client result");
    let summary = fault.finish();
    let _ = client.wait();
    let seen: Value = serde_json::from_str(&line).expect("JSON");
    println!("reset attached at {attached:.3}: {seen}; {summary}");
    assert_eq!(seen[v4(7101)][0], "ConnectionResetError", "{seen}");
    let after = seen[v4(7101)][1].as_f64().expect("time") - attached;
    // The first link acts before chaos prints "attached"; an exchange takes 50 ms.
    assert!(
        (-0.5..1.0).contains(&after),
        "reset within an exchange of the attach: {after:.2} s after it"
    );
    assert_eq!(seen[v4(7102)][0], "ok", "another port untouched: {seen}");
    assert_eq!(
        seen[&v6][0], "ok",
        "a server outside the cgroup untouched: {seen}"
    );
    assert!(summary["injected"].as_u64() >= Some(1), "{summary}");
    drop((_inside, _outside));
    lab.finish();
}
