//! The deadline lives in the kernel: a fault ends on time even while chaos is frozen.

use chaos_tests::{
    assert_programs_gone,
    clients::{connect, ping},
    lab::{Lab, SERVER_V4},
};
use std::time::{Duration, Instant};

fn sleep_until(t: Instant) {
    if let Some(d) = t.checked_duration_since(Instant::now()) {
        std::thread::sleep(d);
    }
}

#[test]
fn net_fault_ends_at_its_deadline_while_chaos_is_stopped() {
    let lab = Lab::new("stopn");
    let dst = SERVER_V4.to_string();
    let fault = lab.drop_at_server(&["--protocol", "icmp", "--duration", "3s"]);
    // chaos sets the deadline before it reports "attached": from here it is at most 3 s away.
    let attached = Instant::now();
    fault.signal(libc::SIGSTOP);
    assert_eq!(
        ping(lab.outside("ping"), &dst, 10, "0.01").received,
        0,
        "fault active"
    );
    sleep_until(attached + Duration::from_millis(3300));
    assert_eq!(fault.state(), 'T', "chaos is still stopped");
    assert_eq!(
        ping(lab.outside("ping"), &dst, 20, "0.01").lost(),
        0,
        "past the deadline"
    );
    fault.signal(libc::SIGCONT);
    let ids = fault.program_ids.clone();
    let s = fault.finish();
    assert_eq!(s["ended"]["by"], "deadline", "{s}");
    assert_programs_gone(&ids);
    lab.finish();
}

#[test]
fn connect_fault_ends_at_its_deadline_while_chaos_is_stopped() {
    let lab = Lab::new("stopc");
    let _srv = lab.tcp_server(&["10.77.0.2:7001"]);
    let dst = SERVER_V4.to_string();
    let fault = lab.fail_connect(&["--errno", "ECONNREFUSED", "--duration", "3s"]);
    let attached = Instant::now();
    fault.signal(libc::SIGSTOP);
    assert_eq!(
        connect(lab.inside("python3"), &dst, 7001, "tcp"),
        libc::ECONNREFUSED,
        "fault active"
    );
    sleep_until(attached + Duration::from_millis(3300));
    assert_eq!(fault.state(), 'T', "chaos is still stopped");
    assert_eq!(
        connect(lab.inside("python3"), &dst, 7001, "tcp"),
        0,
        "past the deadline"
    );
    fault.signal(libc::SIGCONT);
    let ids = fault.program_ids.clone();
    fault.finish();
    assert_programs_gone(&ids);
    lab.finish();
}
