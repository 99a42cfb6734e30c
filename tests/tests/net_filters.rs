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

/// --cgroup at egress: pings sent from inside the cgroup are lost, the same pings from a
/// process outside it (same namespace, same interface) are not.
#[test]
fn cgroup_scope_at_egress() {
    let lab = Lab::new("nfcg");
    let dst = SERVER_V4.to_string();
    let fault = Running::start(&[
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
