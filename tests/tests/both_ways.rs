//! `--direction both` is one conversation: the rule's destination is the peer going out and
//! its source coming in, for addresses and ports alike. Datagrams are counted by real UDP
//! receivers on each side, with controls that the fault must spare.

use chaos_tests::{
    Running,
    clients::{UdpReceiver, udp_send},
    lab::Lab,
};
use std::process::Command;

const N: u32 = 50;

/// N datagrams from `sender` (python3) at source port `sport` to a receiver started by `rx` on
/// HOST:PORT; how many arrived.
fn datagrams(rx: Command, sender: Command, to: (&str, u16), sport: u16) -> u32 {
    let r = UdpReceiver::start(rx, to, "d.decode()");
    udp_send(sender, to, N, sport, "str(i).encode()");
    r.finish().len() as u32
}

fn fault(lab: &Lab, extra: &[&str]) -> Running {
    let mut args = vec![
        "net",
        "drop",
        "--iface",
        &lab.sb.client_if,
        "--netns",
        &lab.sb.client_ns,
        "--direction",
        "both",
        "--dst",
        "10.77.0.2",
        "--protocol",
        "udp",
        "--duration",
        "60s",
    ];
    args.extend_from_slice(extra);
    lab.start(&args)
}

/// The case: a partition between a cgroup and a peer, scoped to the cgroup: nothing
/// goes out to the peer, nothing comes in from it, and processes outside the cgroup talk to it
/// both ways.
#[test]
fn both_ways_with_a_cgroup_cuts_the_peer_in_both_directions() {
    let lab = Lab::new("bwcg");
    let cg = lab.cgroup();
    let f = fault(&lab, &["--cgroup", &cg]);
    let out = datagrams(
        lab.in_server("python3"),
        lab.inside("python3"),
        ("10.77.0.2", 9000),
        0,
    );
    let back = datagrams(
        lab.inside("python3"),
        lab.in_server("python3"),
        ("10.77.0.1", 9100),
        0,
    );
    let out_ctl = datagrams(
        lab.in_server("python3"),
        lab.outside("python3"),
        ("10.77.0.2", 9001),
        0,
    );
    let back_ctl = datagrams(
        lab.outside("python3"),
        lab.in_server("python3"),
        ("10.77.0.1", 9101),
        0,
    );
    let s = f.interrupt();
    println!("cgroup to peer {out}, peer to cgroup {back}, controls {out_ctl} {back_ctl}: {s}");
    assert_eq!((out, back), (0, 0), "both halves cut: {s}");
    assert_eq!((out_ctl, back_ctl), (N, N), "outside the cgroup: untouched");
    let back = datagrams(
        lab.inside("python3"),
        lab.in_server("python3"),
        ("10.77.0.1", 9100),
        0,
    );
    assert_eq!(back, N, "recovered");
    lab.finish();
}

/// Ports too: `--dport 9000` is the peer's port, the destination going out and the source
/// coming in; the peer's other ports are spared.
#[test]
fn both_ways_names_the_peer_port_in_both_directions() {
    let lab = Lab::new("bwport");
    let f = fault(&lab, &["--dport", "9000"]);
    let out = datagrams(
        lab.in_server("python3"),
        lab.outside("python3"),
        ("10.77.0.2", 9000),
        0,
    );
    let back = datagrams(
        lab.outside("python3"),
        lab.in_server("python3"),
        ("10.77.0.1", 9200),
        9000,
    );
    let other = datagrams(
        lab.outside("python3"),
        lab.in_server("python3"),
        ("10.77.0.1", 9201),
        9001,
    );
    let s = f.interrupt();
    println!("to peer:9000 {out}, from peer:9000 {back}, from peer:9001 {other}: {s}");
    assert_eq!(
        (out, back),
        (0, 0),
        "both halves of the conversation with :9000: {s}"
    );
    assert_eq!(other, N, "the peer's other port");
    lab.finish();
}
