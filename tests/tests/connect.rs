//! `chaos syscall connect` with real TCP and UDP clients inside and outside the cgroup.

use chaos_tests::{
    assert_programs_gone,
    clients::connect,
    lab::{Lab, SERVER_V4, SERVER_V6},
    repl::Repl,
};

/// ECONNREFUSED inside the cgroup for the filtered port; a control outside connects; another
/// port connects inside; after chaos ends the inside client connects again.
#[test]
fn refused_inside_the_cgroup_only() {
    let lab = Lab::new("cref");
    let _srv = lab.tcp_server(&["10.77.0.2:7001", "10.77.0.2:7002"]);
    let dst = SERVER_V4.to_string();
    assert_eq!(
        connect(lab.inside("python3"), &dst, 7001, "tcp"),
        0,
        "baseline"
    );
    let fault = lab.fail_connect(&[
        "--errno",
        "ECONNREFUSED",
        "--dport",
        "7001",
        "--duration",
        "60s",
    ]);
    assert_eq!(
        connect(lab.inside("python3"), &dst, 7001, "tcp"),
        libc::ECONNREFUSED,
        "inside"
    );
    assert_eq!(
        connect(lab.outside("python3"), &dst, 7001, "tcp"),
        0,
        "control outside the cgroup"
    );
    assert_eq!(
        connect(lab.inside("python3"), &dst, 7002, "tcp"),
        0,
        "non-matching port"
    );
    let ids = fault.program_ids.clone();
    let summary = fault.interrupt();
    assert_eq!(
        (summary["matched"].as_u64(), summary["injected"].as_u64()),
        (Some(1), Some(1)),
        "{summary}"
    );
    assert_programs_gone(&ids);
    assert_eq!(
        connect(lab.inside("python3"), &dst, 7001, "tcp"),
        0,
        "after chaos"
    );
    lab.finish();
}

/// IPv6 TCP and UDP connect() get the errno too; a CIDR filter leaves IPv4 alone.
#[test]
fn ipv6_and_udp_with_cidr_filter() {
    let lab = Lab::new("cv6");
    let _srv = lab.tcp_server(&["10.77.0.2:7001", "[fd77::2]:7001"]);
    let fault = lab.fail_connect(&[
        "--errno",
        "EHOSTUNREACH",
        "--dst",
        "fd77::/64",
        "--duration",
        "60s",
    ]);
    let v6 = SERVER_V6.to_string();
    assert_eq!(
        connect(lab.inside("python3"), &v6, 7001, "tcp"),
        libc::EHOSTUNREACH,
        "IPv6 TCP"
    );
    assert_eq!(
        connect(lab.inside("python3"), &v6, 53, "udp"),
        libc::EHOSTUNREACH,
        "IPv6 UDP connect"
    );
    assert_eq!(
        connect(lab.inside("python3"), &SERVER_V4.to_string(), 7001, "tcp"),
        0,
        "IPv4 outside the CIDR"
    );
    assert_eq!(
        connect(lab.outside("python3"), &v6, 7001, "tcp"),
        0,
        "control outside the cgroup"
    );
    let ids = fault.program_ids.clone();
    fault.interrupt();
    assert_programs_gone(&ids);
    lab.finish();
}

/// --protocol udp and --pid: UDP connect fails with ETIMEDOUT for that process only (its thread
/// group), while its TCP still connects and another process in the same cgroup is untouched.
#[test]
fn udp_only_by_pid() {
    let lab = Lab::new("cudp");
    let _srv = lab.tcp_server(&["10.77.0.2:7001"]);
    let mut victim = Repl::spawn(lab.inside("python3"));
    let pid = victim.pid();
    let fault = lab.start(&[
        "syscall",
        "connect",
        "--errno",
        "ETIMEDOUT",
        "--protocol",
        "udp",
        "--pid",
        &pid,
        "--duration",
        "60s",
    ]);
    let dst = SERVER_V4.to_string();
    assert_eq!(
        victim.call(&format!("connect {dst} 53 udp")),
        libc::ETIMEDOUT,
        "UDP"
    );
    assert_eq!(
        victim.call(&format!("connect {dst} 7001 tcp")),
        0,
        "TCP untouched"
    );
    assert_eq!(
        connect(lab.inside("python3"), &dst, 53, "udp"),
        0,
        "another process in the same cgroup is untouched"
    );
    let ids = fault.program_ids.clone();
    fault.interrupt();
    drop(victim);
    assert_programs_gone(&ids);
    lab.finish();
}
