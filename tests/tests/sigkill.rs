//! SIGKILL of chaos mid-fault: fd-owned links (TCX, cgroup) vanish with the process, at once;
//! only chaos's record of the fault remains, which `chaos status` removes instead of listing.

use chaos_tests::{
    assert_programs_gone, chaos_via,
    clients::{connect, ping},
    lab::{Lab, SERVER_V4},
};

#[test]
fn sigkill_removes_a_tcx_fault_at_once() {
    if !chaos_tests::kernel_has("tcx", "sigkill_removes_a_tcx_fault_at_once") {
        return;
    }
    let lab = Lab::new("ktcx");
    let dst = SERVER_V4.to_string();
    let fault = lab.drop_at_server(&[
        "--tc-attach",
        "tcx",
        "--protocol",
        "icmp",
        "--duration",
        "10m",
    ]);
    assert_eq!(
        ping(lab.outside("ping"), &dst, 10, "0.01").received,
        0,
        "fault active"
    );
    let ids = fault.program_ids.clone();
    fault.kill();
    assert_programs_gone(&ids);
    assert_eq!(
        ping(lab.outside("ping"), &dst, 20, "0.01").lost(),
        0,
        "traffic flows after SIGKILL"
    );
    nothing_listed_nothing_recorded(&lab);
    lab.finish();
}

#[test]
fn sigkill_removes_a_cgroup_fault_at_once() {
    let lab = Lab::new("kcg");
    let _srv = lab.tcp_server(&["10.77.0.2:7001"]);
    let dst = SERVER_V4.to_string();
    let fault = lab.fail_connect(&["--errno", "ECONNREFUSED", "--duration", "10m"]);
    assert_eq!(
        connect(lab.inside("python3"), &dst, 7001, "tcp"),
        libc::ECONNREFUSED,
        "fault active"
    );
    let ids = fault.program_ids.clone();
    fault.kill();
    assert_programs_gone(&ids);
    assert_eq!(
        connect(lab.inside("python3"), &dst, 7001, "tcp"),
        0,
        "connects after SIGKILL"
    );
    nothing_listed_nothing_recorded(&lab);
    lab.finish();
}

/// The dead fault is listed as orphaned, and `chaos cleanup` removes the listing.
/// A killed chaos's TCX or cgroup fault left nothing in the kernel: `chaos status` lists
/// nothing for it and removes its record (it was listed as "orphaned, N s left" before).
fn nothing_listed_nothing_recorded(lab: &Lab) {
    let (_, out, _) = chaos_via(lab.chaos_cmd(), &["status", "--json"]);
    let listed: serde_json::Value = serde_json::from_str(&out).expect("status JSON");
    assert_eq!(listed, serde_json::json!([]), "{listed}");
    let records = std::fs::read_dir(&lab.state_dir).map_or(0, |d| d.count());
    assert_eq!(
        records, 0,
        "status removed the record of a fault that left nothing"
    );
}
