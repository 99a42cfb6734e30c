//! Benchmark (not a test): what a syscall fault costs the calls it does not fault.
//!
//! For each backend this kernel runs, a loop of real syscalls is timed in three modes, in
//! interleaved rounds so that the machine's noise hits every mode alike:
//! - baseline: no fault anywhere;
//! - outside:  a fault on another (empty) cgroup; the loop runs outside its target;
//! - inside:   a fault on the loop's own cgroup whose filter does not match the calls.
//!
//! cgroup hooks: UDP sendto() on loopback (fault: sendmsg --dport 7); LSM / fmod_ret / kprobe:
//! 16-byte write() to a tmpfs file (fault: write --path <another directory>).
//! Usage: bench-syscall [ROUNDS]  (CHAOS_BIN should point at a release build)

use chaos_tests::chaos_bin;
use std::{
    io::{BufRead, BufReader, Write},
    net::UdpSocket,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::Instant,
};

const CALLS: u32 = 1_000_000;

fn own_cgroup(mount: &Path) -> PathBuf {
    let text = std::fs::read_to_string("/proc/self/cgroup").expect("/proc/self/cgroup");
    let rel = text
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .expect("a cgroup v2 line");
    mount.join(rel.trim_start_matches('/'))
}

fn enter(cg: &Path) {
    std::fs::write(cg.join("cgroup.procs"), std::process::id().to_string())
        .unwrap_or_else(|e| panic!("entering {}: {e}", cg.display()));
}

/// Starts chaos with a fault and waits for it to be attached (returns it with chaos's
/// description, which names the backend); Err: why not.
fn fault(args: &[&str]) -> Result<(Child, String), String> {
    let mut child = Command::new(chaos_bin())
        .args(["--json", "syscall"])
        .args(args)
        .args(["--duration", "10m"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn chaos");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("read chaos");
    if line.contains("\"attached\"") {
        let v: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
        return Ok((child, v["detail"].as_str().unwrap_or_default().to_string()));
    }
    let out = child.wait_with_output().expect("chaos");
    Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
}

fn stop(mut c: Child) {
    // SAFETY: kill on our own child's pid.
    unsafe { libc::kill(c.id() as i32, libc::SIGINT) };
    let _ = c.wait();
}

fn time_sendto() -> f64 {
    // A bound receiver that never reads: once its buffer is full the kernel drops datagrams
    // quietly (a closed port would make every send generate an ICMP error).
    let sink = UdpSocket::bind("127.0.0.1:0").expect("udp sink");
    let to = sink.local_addr().expect("sink address");
    let s = UdpSocket::bind("127.0.0.1:0").expect("udp");
    let t = Instant::now();
    for _ in 0..CALLS {
        let _ = s.send_to(b"0123456789abcdef", to);
    }
    t.elapsed().as_nanos() as f64 / CALLS as f64
}

fn time_write(file: &Path) -> f64 {
    let mut f = std::fs::File::create(file).expect("bench file");
    let t = Instant::now();
    for i in 0..CALLS {
        if i % 65536 == 0 {
            // Keep the file small; rewinding is outside the measured call mix only in amount.
            let _ = f.set_len(0);
        }
        let _ = f.write(b"0123456789abcdef");
    }
    t.elapsed().as_nanos() as f64 / CALLS as f64
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

struct Case {
    name: &'static str,
    /// Fault arguments with {cg} for the target cgroup.
    fault: Vec<String>,
    run: Box<dyn Fn() -> f64>,
}

fn main() {
    let rounds: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(5);
    let mount = chaos::cgroup::v2_mount().expect("cgroup v2");
    let home = own_cgroup(&mount);
    let tag = std::process::id();
    let (target, inside) = (
        mount.join(format!("chaos-bench-{tag}-target")),
        mount.join(format!("chaos-bench-{tag}-inside")),
    );
    let other_dir = std::env::temp_dir().join(format!("chaos-bench-{tag}-other"));
    let file = std::env::temp_dir().join(format!("chaos-bench-{tag}-file"));
    for d in [&target, &inside, &other_dir] {
        std::fs::create_dir_all(d).expect("mkdir");
    }
    let other = other_dir.to_string_lossy().into_owned();
    let file2 = file.clone();
    let cases = vec![
        Case {
            name: "sendto (cgroup sock_addr hook)",
            fault: [
                "sendmsg", "--errno", "EPERM", "--dport", "7", "--cgroup", "{cg}",
            ]
            .map(String::from)
            .to_vec(),
            run: Box::new(time_sendto),
        },
        Case {
            name: "write (BPF LSM, fmod_ret or kprobe)",
            fault: [
                "write", "--errno", "EIO", "--path", &other, "--cgroup", "{cg}",
            ]
            .map(String::from)
            .to_vec(),
            run: Box::new(move || time_write(&file2)),
        },
    ];
    println!("bench-syscall: {CALLS} calls per run, {rounds} interleaved rounds, medians");
    let cgroups = Cgroups {
        home: &home,
        target: &target,
        inside: &inside,
    };
    for case in &cases {
        measure(case, rounds, &cgroups);
    }
    enter(&home);
    for d in [&target, &inside] {
        let _ = std::fs::remove_dir(d);
    }
    let _ = std::fs::remove_dir_all(&other_dir);
    let _ = std::fs::remove_file(&file);
}

/// The cgroups of a run: where the benchmark lives, the fault's target (not the loop's), and
/// the loop's own.
struct Cgroups<'a> {
    home: &'a Path,
    target: &'a Path,
    inside: &'a Path,
}

/// Interleaved rounds of one case: no program, a fault on another cgroup, a fault on the loop's
/// cgroup that matches nothing; prints the medians and their ratios to the first.
fn measure(case: &Case, rounds: usize, cg: &Cgroups) {
    let args = |on: &Path| -> Vec<String> {
        case.fault
            .iter()
            .map(|a| a.replace("{cg}", &on.to_string_lossy()))
            .collect()
    };
    let timed = |on: &Path| -> Result<(f64, String), String> {
        let a = args(on);
        let (c, detail) = fault(&a.iter().map(String::as_str).collect::<Vec<_>>())?;
        enter(cg.inside);
        let ns = (case.run)();
        enter(cg.home);
        stop(c);
        Ok((ns, detail))
    };
    let (mut base, mut out, mut ins) = (Vec::new(), Vec::new(), Vec::new());
    let mut how = String::new();
    for _ in 0..rounds {
        enter(cg.inside);
        base.push((case.run)());
        enter(cg.home);
        match timed(cg.target) {
            Ok((ns, detail)) => {
                out.push(ns);
                how = detail;
            }
            Err(why) => {
                println!("{}: not available on this kernel: {why}", case.name);
                return;
            }
        }
        let (ns, _) = timed(cg.inside).expect("the same fault attaches to the loop's cgroup");
        ins.push(ns);
    }
    let (b, o, i) = (median(&mut base), median(&mut out), median(&mut ins));
    println!("{}: {how}", case.name);
    println!("  no program           {b:8.1} ns/call");
    println!(
        "  outside the target   {o:8.1} ns/call  ratio {:.3}  ({:+.1} ns)",
        o / b,
        o - b
    );
    println!(
        "  inside, no match     {i:8.1} ns/call  ratio {:.3}  ({:+.1} ns)",
        i / b,
        i - b
    );
}
