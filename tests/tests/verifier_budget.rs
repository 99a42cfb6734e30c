//! The verifier's work on every program chaos attaches stays within its budget in
//! tests/verifier-budget.json. Deterministic: the figure is the kernel's own count of verified
//! instructions (bpf_prog_info.verified_insns, Linux >= 5.16), not a time. A budget exceeded,
//! or a program with no budget, fails the test with the figures to look at.
//!
//! Programs are loaded by the real `chaos` binary in dry-run mode where this kernel can attach
//! them, and through the chaos library where it cannot (the ifb programs need the fq qdisc).

use chaos::ebpf;
use chaos_common::maps::{PROG_TC_HANDOFF, PROG_TC_INGRESS_IFB};
use chaos_tests::{Running, kernel_runs, lab::Lab};
use serde_json::Value;

/// One measured program: (case, program name, verified instructions).
type Figure = (String, String, u32);

fn budgets() -> Vec<Value> {
    // Compiled in, so that the test binary carries it into the VM guests.
    let text = include_str!("../verifier-budget.json");
    let v: Value = serde_json::from_str(text).expect("verifier-budget.json is JSON");
    v["budgets"].as_array().expect("budgets array").clone()
}

/// The kernel's verified instruction count for program `id`, with its name.
fn verified(id: u32) -> (String, u32) {
    let info = aya::programs::loaded_programs()
        .flatten()
        .find(|p| p.id() == id)
        .unwrap_or_else(|| panic!("program {id} not loaded"));
    let name = info.name_as_str().unwrap_or_default().to_string();
    let n = info.verified_instruction_count().unwrap_or_else(|| {
        panic!("no verified_insns for {name} (id {id}): the kernel predates 5.16")
    });
    (name, n)
}

/// Checks every figure against its budget; panics listing every miss.
fn check(figures: &[Figure]) {
    let budgets = budgets();
    let mut misses = Vec::new();
    for (case, program, n) in figures {
        let entry = budgets
            .iter()
            .find(|b| b["case"] == case.as_str() && b["program"] == program.as_str());
        let Some(entry) = entry else {
            misses.push(format!(
                "{case} / {program}: {n} verified instructions and no budget: add one"
            ));
            continue;
        };
        let budget = entry["budget"].as_u64().expect("budget is a number");
        let set_at = &entry["measured"];
        eprintln!("{case} / {program}: {n} verified (budget {budget}, measured {set_at})");
        if u64::from(*n) > budget {
            misses.push(format!(
                "{case} / {program}: {n} verified instructions, over its budget of {budget} \
                 (measured {set_at} when it was set)"
            ));
        }
    }
    assert!(
        misses.is_empty(),
        "verifier budget (tests/verifier-budget.json):\n{}",
        misses.join("\n")
    );
}

/// Starts chaos (dry run), measures its programs, stops it.
fn measure(lab: &Lab, case: &str, args: &[&str]) -> Vec<Figure> {
    let fault = Running::start_via(lab.chaos_cmd(), args);
    let figures = fault
        .program_ids
        .iter()
        .map(|&id| {
            let (name, n) = verified(id as u32);
            eprintln!("{case} / {name}: {n} verified instructions");
            (case.to_string(), name, n)
        })
        .collect();
    fault.interrupt();
    figures
}

#[test]
fn packet_programs_within_budget() {
    let lab = Lab::new("vbnet");
    let dry = ["--dry-run", "--duration", "60s"];
    let mut figures = Vec::new();
    let mut args = lab.at_server("drop", &["--percent", "10"]);
    args.extend(dry);
    figures.extend(measure(&lab, "net drop, 1 rule, ingress", &args));
    let mut args = lab.at_server("drop", &["--percent", "10", "--direction", "egress"]);
    args.extend(dry);
    figures.extend(measure(&lab, "net drop, 1 rule, egress", &args));
    let rules = [
        "drop --percent 5 --protocol udp --dport 53",
        "drop --percent 5 --dport 5432",
        "duplicate --percent 10 --protocol tcp --dport 80",
        "corrupt --percent 1 --protocol udp --dport 9000",
        "drop --percent 50 --dst 10.0.0.0/8,192.168.0.0/16",
        "duplicate --percent 3 --dport 443",
        "corrupt --percent 20 --dport 8080 --keep-checksum",
        "drop --percent 1 --protocol icmp",
    ];
    let mut args = lab.at_server("rules", &[]);
    for r in &rules {
        args.extend(["--rule", r]);
    }
    args.extend(dry);
    figures.extend(measure(&lab, "net rules, 8 rules, ingress", &args));
    let cgroup = lab.cgroup();
    let mut args = vec!["net", "drop", "--cgroup", &cgroup, "--direction", "ingress"];
    args.extend(dry);
    figures.extend(measure(&lab, "net drop, cgroup ingress", &args));
    let mut args = lab.at_server("dns", &["--rcode", "NXDOMAIN", "--name", "*.example.com"]);
    args.extend(dry);
    figures.extend(measure(&lab, "net dns", &args));
    let (iface, netns) = (lab.sb.client_if.clone(), lab.sb.client_ns.clone());
    let mut args = vec!["net", "http-abort", "--iface", &iface, "--netns", &netns];
    args.extend(["--cgroup", &cgroup, "--port", "8080"]);
    args.extend(dry);
    figures.extend(measure(&lab, "net http-abort, cgroup", &args));
    check(&figures);
    lab.finish();
}

/// The ingress-delay classifier and the handoff filter, loaded without attaching (attaching
/// them needs an fq qdisc, which this kernel may lack) with the parts `net delay --jitter`
/// loads; and the ingress classifier with every part (what `chaos doctor` loads), the most
/// any rule set can cost.
#[test]
fn ifb_programs_within_budget() {
    use chaos_common::{
        ACTION_DELAY,
        features::{ALL, JITTER, action, slots},
        maps::PROG_TC_INGRESS,
    };
    chaos_tests::require_root();
    let delay = action(ACTION_DELAY) | JITTER | slots(1);
    let mut figures = Vec::new();
    for (case, name, features) in [
        ("ingress delay through an ifb", PROG_TC_INGRESS_IFB, delay),
        ("ifb handoff filter", PROG_TC_HANDOFF, delay),
        ("classifier, every part loaded", PROG_TC_INGRESS, ALL),
    ] {
        let mut obj =
            ebpf::load(ebpf::Programs::Packets, None, None, features).expect("load the object");
        let prog: &mut aya::programs::SchedClassifier =
            ebpf::program_as(&mut obj, name, "classifier").expect("classifier");
        prog.load().unwrap_or_else(|e| panic!("load {name}: {e}"));
        let id = prog.info().expect("program info").id();
        let (kernel_name, n) = verified(id);
        figures.push((case.to_string(), kernel_name, n));
    }
    check(&figures);
}

#[test]
fn sock_addr_programs_within_budget() {
    let lab = Lab::new("vbsock");
    let cgroup = lab.cgroup();
    let mut figures = Vec::new();
    for (call, errno) in [
        ("connect", "ECONNREFUSED"),
        ("sendmsg", "EPERM"),
        ("bind", "EADDRINUSE"),
    ] {
        let args = [
            "syscall",
            call,
            "--errno",
            errno,
            "--cgroup",
            &cgroup,
            "--dry-run",
            "--duration",
            "60s",
        ];
        figures.extend(measure(&lab, &format!("syscall {call}"), &args));
    }
    check(&figures);
    lab.finish();
}

/// Crash faults' tracepoint programs: on a descriptor with --path (walks the descriptor table
/// and the directories above the file), and by scope only.
#[test]
fn crash_programs_within_budget() {
    if !chaos_tests::kernel_has("send_signal", "crash_programs_within_budget") {
        return;
    }
    let lab = Lab::new("vbcrash");
    let cgroup = lab.cgroup();
    let dirs = PathDirs::new(chaos_common::syscall::MAX_PATHS);
    let mut figures = Vec::new();
    for (case, call, paths) in [
        ("syscall write --signal, --path", "write", 1),
        ("syscall write --signal, 8 paths", "write", 8),
        ("syscall open --signal", "open", 0),
    ] {
        let mut args = vec!["syscall", call, "--signal", "SIGKILL", "--cgroup", &cgroup];
        args.extend(dirs.args(paths));
        args.extend(["--dry-run", "--duration", "60s"]);
        figures.extend(measure(&lab, case, &args));
    }
    check(&figures);
    lab.finish();
}

/// Directories to name with `--path` (the verifier's work grows with their number), removed
/// when dropped.
struct PathDirs(Vec<String>);

impl PathDirs {
    fn new(n: usize) -> Self {
        let base = std::env::temp_dir().join(format!("chaos-vb-{}", std::process::id()));
        let dirs: Vec<String> = (0..n)
            .map(|i| base.join(i.to_string()).to_string_lossy().into_owned())
            .collect();
        for d in &dirs {
            std::fs::create_dir_all(d).expect("create a --path directory");
        }
        Self(dirs)
    }

    /// `--path DIR` for the first `n` directories.
    fn args(&self, n: usize) -> Vec<&str> {
        self.0[..n]
            .iter()
            .flat_map(|d| ["--path", d.as_str()])
            .collect()
    }
}

impl Drop for PathDirs {
    fn drop(&mut self) {
        if let Some(base) = self
            .0
            .first()
            .and_then(|d| std::path::Path::new(d).parent())
        {
            let _ = std::fs::remove_dir_all(base);
        }
    }
}

/// File and process syscalls (BPF LSM, else fmod_ret, else kprobes): where this kernel runs
/// them; otherwise `kernel_runs` prints why they are not measured here.
#[test]
fn syscall_hook_programs_within_budget() {
    let (code, list, err) = chaos_tests::chaos(&["syscall", "--list"]);
    assert_eq!(code, 0, "chaos syscall --list: {err}");
    let lab = Lab::new("vbhook");
    let cgroup = lab.cgroup();
    let mut figures = Vec::new();
    for (call, errno) in hook_calls(&list) {
        let fault = format!("syscall {call}");
        if !kernel_runs(&fault, "syscall_hook_programs_within_budget") {
            continue;
        }
        let args = [
            "syscall",
            &call,
            "--errno",
            &errno,
            "--cgroup",
            &cgroup,
            "--dry-run",
            "--duration",
            "60s",
        ];
        figures.extend(measure(&lab, &fault, &args));
    }
    // The directory walk is verified only where a rule names --path: once with one, once with
    // the most a rule takes.
    if kernel_runs("syscall write", "syscall_hook_programs_within_budget") {
        let dirs = PathDirs::new(chaos_common::syscall::MAX_PATHS);
        for (case, paths) in [("syscall write --path", 1), ("syscall write, 8 paths", 8)] {
            let mut args = vec!["syscall", "write", "--errno", "EIO", "--cgroup", &cgroup];
            args.extend(dirs.args(paths));
            args.extend(["--dry-run", "--duration", "60s"]);
            figures.extend(measure(&lab, case, &args));
        }
    }
    check(&figures);
    lab.finish();
}

/// The calls of `chaos syscall --list` that do not use cgroup sock_addr hooks, each with the
/// first errno it takes.
fn hook_calls(list: &str) -> Vec<(String, String)> {
    let mut calls = Vec::new();
    let mut current: Option<(String, bool)> = None;
    for line in list.lines() {
        if !line.starts_with(' ') {
            let name = line.split_whitespace().next().unwrap_or_default();
            current = Some((name.to_string(), false));
        } else if let Some((name, sock_addr)) = &mut current {
            let line = line.trim();
            if line.starts_with("hook:") && line.contains("sock_addr") {
                *sock_addr = true;
            }
            if let Some(errnos) = line.strip_prefix("errnos:")
                && !*sock_addr
            {
                let first = errnos.split_whitespace().next().unwrap_or_default();
                calls.push((name.clone(), first.to_string()));
            }
        }
    }
    assert!(!calls.is_empty(), "no file or process syscalls in:\n{list}");
    calls
}
