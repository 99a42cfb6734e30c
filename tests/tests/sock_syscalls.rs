//! sendmsg, bind and connect faults beyond the basics (cgroup sock_addr hooks, this kernel):
//! UDP and IPv6 victims, --after/--times counted exactly, --comm, and a control outside.

use chaos_tests::{Running, assert_programs_gone, lab::Lab, repl::Repl, stats::binomial_999};

/// sendto() of UDP datagrams to the filtered port fails with ENETUNREACH over IPv4 and IPv6,
/// inside the cgroup only; another port is untouched.
#[test]
fn sendmsg_fails_udp_datagrams_v4_and_v6() {
    let lab = Lab::new("ssnd");
    let mut victim = Repl::spawn(lab.inside("python3"));
    let mut control = Repl::spawn(lab.outside("python3"));
    let fault = lab.syscall(&["sendmsg", "--errno", "ENETUNREACH", "--dport", "9000"]);
    let unreach = libc::ENETUNREACH;
    assert_eq!(victim.call("sendto 10.77.0.2 9000 udp"), unreach, "v4");
    assert_eq!(victim.call("sendto fd77::2 9000 udp"), unreach, "v6");
    assert_eq!(victim.call("sendto 10.77.0.2 9001 udp"), 0, "other port");
    assert_eq!(control.call("sendto 10.77.0.2 9000 udp"), 0, "control");
    let ids = fault.program_ids.clone();
    let s = fault.interrupt();
    assert_eq!(s["injected"], 2, "{s}");
    assert_programs_gone(&ids);
    drop((victim, control));
    lab.finish();
}

/// bind() of the filtered port fails with EADDRINUSE (TCP and UDP, IPv4 and IPv6).
#[test]
fn bind_fails_the_filtered_port() {
    let lab = Lab::new("sbnd");
    let mut victim = Repl::spawn(lab.inside("python3"));
    let mut control = Repl::spawn(lab.outside("python3"));
    let fault = lab.syscall(&["bind", "--errno", "EADDRINUSE", "--dport", "7200"]);
    let inuse = libc::EADDRINUSE;
    assert_eq!(victim.call("bind 10.77.0.1 7200 tcp"), inuse, "tcp v4");
    assert_eq!(victim.call("bind 10.77.0.1 7200 udp"), inuse, "udp v4");
    assert_eq!(victim.call("bind fd77::1 7200 tcp"), inuse, "tcp v6");
    assert_eq!(victim.call("bind 10.77.0.1 7201 tcp"), 0, "other port");
    assert_eq!(control.call("bind 10.77.0.1 7200 tcp"), 0, "control");
    let ids = fault.program_ids.clone();
    fault.interrupt();
    assert_programs_gone(&ids);
    drop((victim, control));
    lab.finish();
}

/// --after 2 --times 3: calls 3 to 5 of the process fail, the rest connect.
#[test]
fn connect_after_and_times_are_exact() {
    let lab = Lab::new("saft");
    let _srv = lab.tcp_server(&["10.77.0.2:7001"]);
    let mut victim = Repl::spawn(lab.inside("python3"));
    let pid = victim.pid();
    let fault = Running::start_via(
        lab.chaos_cmd(),
        &[
            "syscall",
            "connect",
            "--errno",
            "ECONNREFUSED",
            "--after",
            "2",
            "--times",
            "3",
            "--pid",
            &pid,
            "--duration",
            "60s",
        ],
    );
    let r = libc::ECONNREFUSED;
    assert_eq!(
        victim.calls("connect 10.77.0.2 7001 tcp", 7),
        vec![0, 0, r, r, r, 0, 0]
    );
    let ids = fault.program_ids.clone();
    let s = fault.interrupt();
    assert_eq!(
        (s["matched"].as_u64(), s["injected"].as_u64()),
        (Some(7), Some(3)),
        "{s}"
    );
    assert_programs_gone(&ids);
    drop(victim);
    lab.finish();
}

/// --comm: a rule for another command name leaves the process alone; one for its own name
/// (read from /proc) faults it.
#[test]
fn comm_selects_by_command_name() {
    let lab = Lab::new("scom");
    let _srv = lab.tcp_server(&["10.77.0.2:7001"]);
    let mut victim = Repl::spawn(lab.inside("python3"));
    let comm = std::fs::read_to_string(format!("/proc/{}/comm", victim.pid()))
        .expect("comm")
        .trim()
        .to_string();
    let call = "connect 10.77.0.2 7001 tcp";
    let other = lab.syscall(&["connect", "--errno", "ECONNRESET", "--comm", "not-python"]);
    assert_eq!(victim.call(call), 0, "other comm");
    other.interrupt();
    let own = lab.syscall(&["connect", "--errno", "ECONNRESET", "--comm", &comm]);
    assert_eq!(victim.call(call), libc::ECONNRESET, "own comm {comm}");
    let ids = own.program_ids.clone();
    own.interrupt();
    assert_programs_gone(&ids);
    drop(victim);
    lab.finish();
}

/// --percent 30 over 2,000 bind() calls: the failures the process saw fall inside the binomial
/// 99.9 % interval and equal the kernel's count.
#[test]
fn percent_is_accurate_for_bind() {
    let lab = Lab::new("spct");
    let mut victim = Repl::spawn(lab.inside("python3"));
    let fault = lab.syscall(&[
        "bind",
        "--errno",
        "EACCES",
        "--dport",
        "7300",
        "--percent",
        "30",
    ]);
    let n = 2000;
    let failed = victim
        .calls("bind 10.77.0.1 7300 udp", n)
        .iter()
        .filter(|&&e| e == libc::EACCES)
        .count() as u64;
    let (lo, hi) = binomial_999(n as u64, 0.3);
    assert!(
        (lo..=hi).contains(&failed),
        "{failed} of {n} not in {lo}..={hi}"
    );
    let ids = fault.program_ids.clone();
    let s = fault.interrupt();
    assert_eq!(s["injected"].as_u64(), Some(failed), "{s}");
    assert_programs_gone(&ids);
    drop(victim);
    lab.finish();
}
