//! `Fault::disarm` ends a fault in the kernel at once, while its links are still attached:
//! chaos calls it at Ctrl-C, the deadline, an experiment's or the agent's stop, before closing
//! links (a tracepoint's close waits for RCU grace periods) and reading the last counters.
//! Deterministic: the test holds the attached program itself, so the only thing between the
//! writer and SIGKILL after the disarm is the disarm.

use aya::programs::TracePoint;
use chaos::{cgroup::Cgroup, controls::Controls, ebpf, fault::FaultCore};
use chaos_common::{
    THRESHOLD_ALWAYS,
    maps::{SYS_CFG, SYS_STATS},
    syscall::{OP_WRITE, Scope, SysRule},
};
use chaos_tests::{kernel_has, lab::Lab};
use std::{os::unix::process::ExitStatusExt, time::Duration};

/// One write(2) to a file, from inside the lab's cgroup: how the writer ended.
fn write_once(lab: &Lab, file: &std::path::Path) -> std::process::ExitStatus {
    lab.inside("python3")
        .args([
            "-c",
            "import os, sys; os.write(os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT, 0o644), b'x')",
        ])
        .arg(file)
        .status()
        .expect("python3 runs")
}

#[test]
fn a_disarmed_crash_fault_signals_nothing_while_still_attached() {
    const TEST: &str = "a_disarmed_crash_fault_signals_nothing_while_still_attached";
    if !kernel_has("send_signal", TEST) {
        return;
    }
    if !std::path::Path::new("/sys/kernel/tracing/events/syscalls").is_dir() {
        let _ = std::process::Command::new("mount")
            .args(["-t", "tracefs", "nodev", "/sys/kernel/tracing"])
            .status();
    }
    let lab = Lab::new("dis");
    let cg = Cgroup::resolve(&lab.cgroup()).expect("the lab's cgroup");
    // SAFETY: SysRule is #[repr(C)] plain data for which all-zero is valid.
    let zero: SysRule = unsafe { std::mem::zeroed() };
    let rule = SysRule {
        threshold: THRESHOLD_ALWAYS,
        scope: Scope {
            cgroup_id: cg.id,
            cgroup_level: cg.level,
            ..Scope::default()
        },
        op: OP_WRITE,
        signal: libc::SIGKILL as u32,
        fault_id: 1,
        ..zero
    };
    let mut core = FaultCore::load(
        rule,
        &Controls::default(),
        Duration::from_secs(60),
        SYS_CFG,
        SYS_STATS,
    )
    .expect("load the object");
    let p: &mut TracePoint = ebpf::program_as(&mut core.ebpf, "chaos_crash_call", "tracepoint")
        .expect("the crash program");
    p.load().expect("load chaos_crash_call");
    p.attach("syscalls", "sys_enter_write")
        .expect("attach to sys_enter_write");
    let file = std::env::temp_dir().join(format!("chaos-dis-{}", std::process::id()));

    let before = write_once(&lab, &file);
    assert_eq!(
        before.signal(),
        Some(libc::SIGKILL),
        "armed: the write is fatal"
    );
    core.disarm().expect("disarm");
    let after = write_once(&lab, &file);
    assert!(after.success(), "disarmed, still attached: {after:?}");
    let c = core.counters().expect("counters");
    assert_eq!(
        (c.matched, c.injected),
        (1, 1),
        "only the armed write: {c:?}"
    );

    drop(core);
    let _ = std::fs::remove_file(&file);
    lab.finish();
}
