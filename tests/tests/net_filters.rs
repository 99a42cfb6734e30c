//! Filters of `chaos net drop`: protocol, port, CIDR and cgroup, each with a control flow that
//! must stay untouched.

use chaos_tests::{
    Running, assert_programs_gone,
    clients::{connect, ping},
    lab::{Lab, SERVER_V4, SERVER_V6},
};

const TIMED_OUT: i32 = -1;

/// --protocol tcp --dport: connections to that port die (SYNs dropped), another port and
/// ICMP pass.
#[test]
fn port_and_protocol_filters() {
    let lab = Lab::new("nfport");
    let _srv = lab.tcp_server(&["10.77.0.2:7001", "10.77.0.2:7002"]);
    let dst = SERVER_V4.to_string();
    let fault = lab.drop_at_server(&["--protocol", "tcp", "--dport", "7001", "--duration", "60s"]);
    let hit = connect(lab.outside("python3"), &dst, 7001, "tcp");
    assert!(
        hit == libc::ETIMEDOUT || hit == TIMED_OUT || hit == libc::EAGAIN,
        "dport 7001 got {hit}"
    );
    assert_eq!(
        connect(lab.outside("python3"), &dst, 7002, "tcp"),
        0,
        "other port must connect"
    );
    assert_eq!(
        ping(lab.outside("ping"), &dst, 20, "0.01").lost(),
        0,
        "ICMP must pass"
    );
    let ids = fault.program_ids.clone();
    let summary = fault.interrupt();
    assert!(summary["injected"].as_u64() >= Some(1), "{summary}");
    assert_programs_gone(&ids);
    assert_eq!(
        connect(lab.outside("python3"), &dst, 7001, "tcp"),
        0,
        "port 7001 after chaos"
    );
    lab.finish();
}

/// --dst with an IPv6 prefix: IPv6 ping is dropped, IPv4 ping passes.
#[test]
fn cidr_filter_separates_families() {
    let lab = Lab::new("nfcidr");
    let v6 = SERVER_V6.to_string();
    let fault = lab.drop_at_server(&[
        "--dst",
        "fd77::/64",
        "--protocol",
        "icmp",
        "--duration",
        "60s",
    ]);
    assert_eq!(
        ping(lab.outside("ping"), &v6, 20, "0.01").received,
        0,
        "IPv6 to fd77::/64 dropped"
    );
    assert_eq!(
        ping(lab.outside("ping"), &SERVER_V4.to_string(), 20, "0.01").lost(),
        0,
        "IPv4 passes"
    );
    let ids = fault.program_ids.clone();
    fault.interrupt();
    assert_programs_gone(&ids);
    lab.finish();
}

/// Many prefixes (an LPM trie): 1,000 unrelated IPv4 /24s and an IPv6 /32 from --dst-file, plus
/// the server's 10.77.0.0/24 from --dst: IPv4 ping to the server is dropped (its prefix is found
/// among the others), IPv6 ping (not in the set) passes.
#[test]
fn cidr_set_through_lpm_trie() {
    let lab = Lab::new("nflpm");
    let list = chaos_tests::TempPath::new("prefixes");
    let mut text = String::from("# unrelated prefixes\n");
    for i in 0..1000 {
        text += &format!("172.{}.{}.0/24\n", 16 + i / 256, i % 256);
    }
    text += "2001:db8::/32  # documentation\n";
    // Shares its first 16 bits with the server's IPv6 address: past the first stage (the hint
    // bit is set), the trie must still say no.
    text += "fd77:0:0:1::/64\n";
    std::fs::write(&list.0, text).expect("prefix file");
    let fault = lab.drop_at_server(&[
        "--dst-file",
        list.as_str(),
        "--dst",
        "10.77.0.0/24",
        "--protocol",
        "icmp",
        "--duration",
        "60s",
    ]);
    assert_eq!(
        ping(lab.outside("ping"), &SERVER_V4.to_string(), 20, "0.01").received,
        0,
        "IPv4 to a prefix of the set dropped"
    );
    assert_eq!(
        ping(lab.outside("ping"), &SERVER_V6.to_string(), 20, "0.01").lost(),
        0,
        "IPv6 outside the set (but in a /16 of it) passes"
    );
    let ids = fault.program_ids.clone();
    let s = fault.interrupt();
    assert_eq!(s["injected"], 20, "{s}");
    assert_programs_gone(&ids);

    // IPv6 through the set path, and families never cross: ::ffff:0:0/96 in a set holds no
    // IPv4 packet (the trie once stored IPv4 as ::ffff:a.b.c.d, and dropped them all). Neighbour
    // discovery (to ff02::1:ff00:2) is in neither prefix.
    let fault = lab.drop_at_server(&[
        "--dst",
        "::ffff:0:0/96",
        "--dst",
        "fd77::/64",
        "--protocol",
        "icmp",
        "--duration",
        "60s",
    ]);
    assert_eq!(
        ping(lab.outside("ping"), &SERVER_V6.to_string(), 20, "0.01").received,
        0,
        "IPv6 in fd77::/64 dropped"
    );
    assert_eq!(
        ping(lab.outside("ping"), &SERVER_V4.to_string(), 20, "0.01").lost(),
        0,
        "IPv4 is not under ::ffff:0:0/96"
    );
    let s = fault.interrupt();
    assert_eq!(s["injected"], 20, "{s}");
    lab.finish();
}

/// --cgroup at egress: pings sent from inside the cgroup are lost, the same pings from a
/// process outside it (same namespace, same interface) are not.
#[test]
fn cgroup_scope_at_egress() {
    let lab = Lab::new("nfcg");
    let dst = SERVER_V4.to_string();
    let fault = lab.start(&[
        "net",
        "drop",
        "--iface",
        &lab.sb.client_if,
        "--netns",
        &lab.sb.client_ns,
        "--cgroup",
        &lab.cgroup(),
        "--protocol",
        "icmp",
        "--duration",
        "60s",
    ]);
    let inside = ping(lab.inside("ping"), &dst, 20, "0.01");
    let outside = ping(lab.outside("ping"), &dst, 20, "0.01");
    let ids = fault.program_ids.clone();
    let summary = fault.interrupt();
    assert_eq!(inside.received, 0, "inside the cgroup: {inside:?}");
    assert_eq!(outside.lost(), 0, "outside the cgroup: {outside:?}");
    assert!(summary["injected"].as_u64() >= Some(1), "{summary}");
    assert_programs_gone(&ids);
    assert_eq!(
        ping(lab.inside("ping"), &dst, 20, "0.01").lost(),
        0,
        "inside, after chaos"
    );
    lab.finish();
}

/// Counts datagrams arriving on 10.77.0.1:PORT until its stdin closes (the test closes it once
/// the sender is done: a receiver whose datagrams are all dropped cannot tell by silence).
const COUNT_UDP: &str = r#"
import select, socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("10.77.0.1", int(sys.argv[1])))
print("ready", flush=True)
n = 0
while True:
    r, _, _ = select.select([s, sys.stdin], [], [])
    if s in r:
        s.recv(64); n += 1
    elif sys.stdin in r:
        break
s.setblocking(False)
try:
    while True:
        s.recv(64); n += 1
except BlockingIOError:
    pass
print(n, flush=True)
"#;

const SEND_UDP: &str = r#"
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for i in range(int(sys.argv[1])):
    for port in sys.argv[2:]:
        s.sendto(b"x", ("10.77.0.1", int(port)))
    time.sleep(0.001)
"#;

fn receiver(mut cmd: std::process::Command, port: &str) -> std::process::Child {
    use std::io::BufRead;
    let mut c = cmd
        .args(["-c", COUNT_UDP, port])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("receiver");
    let mut line = String::new();
    std::io::BufReader::new(c.stdout.as_mut().expect("stdout"))
        .read_line(&mut line)
        .expect("ready");
    c
}

fn received(mut c: std::process::Child) -> u64 {
    drop(c.stdin.take());
    let out = c.wait_with_output().expect("receiver");
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .expect("count")
}

/// --cgroup --direction ingress, no --iface: arriving datagrams are dropped for the cgroup's
/// receiver only (cgroup_skb), a receiver outside the cgroup in the same namespace gets all.
#[test]
fn cgroup_scope_at_ingress_for_drop() {
    let lab = Lab::new("nfcgin");
    let inside = receiver(lab.inside("python3"), "9301");
    let outside = receiver(lab.outside("python3"), "9302");
    let cg = lab.cgroup();
    let fault = Running::start_via(
        lab.chaos_cmd(),
        &[
            "net",
            "drop",
            "--cgroup",
            &cg,
            "--direction",
            "ingress",
            "--protocol",
            "udp",
            "--duration",
            "60s",
        ],
    );
    let n = 200;
    let sent = std::process::Command::new("nsenter")
        .arg(format!("--net=/run/netns/{}", lab.sb.server_ns))
        .args(["python3", "-c", SEND_UDP, &n.to_string(), "9301", "9302"])
        .status()
        .expect("sender");
    assert!(sent.success());
    // What is still in flight on the veth arrives within this.
    std::thread::sleep(std::time::Duration::from_millis(300));
    let (got_in, got_out) = (received(inside), received(outside));
    let ids = fault.program_ids.clone();
    let s = fault.interrupt();
    assert_eq!(got_in, 0, "inside the cgroup");
    assert_eq!(got_out, n, "outside the cgroup");
    assert_eq!(s["injected"].as_u64(), Some(n), "{s}");
    assert_programs_gone(&ids);
    lab.finish();
}
