//! Benchmark (not a test): how fast a fault starts and stops, seen by real traffic.
//!
//! A sender in the lab's client namespace sends one UDP datagram every 50 µs carrying its
//! sequence number; a receiver in the server namespace records which arrive. chaos drops
//! 100 % of them at the server's ingress. Measured per run:
//! - inject: from spawning `chaos net drop` to the send time of the first datagram lost;
//! - detach: from SIGINT to the send time of the first datagram that arrives again;
//! - exit:   from SIGINT to the chaos process having exited.
//!
//! for a one-rule TCX drop (on this host as it is, and again while this process holds a TCX
//! link elsewhere, as Cilium's would be), a one-rule cls_bpf drop and an 8-rule `net rules`
//! set (the matching rule last);
//! and for `syscall connect`: from spawning chaos to the first connect() refused in a process
//! of the target cgroup that connects in a loop. Every case runs idle, then again with both
//! CPUs kept busy by spinning threads of this process (busy/idle ratio). First, under the
//! same traffic, the kernel's own part of a TCX start on a host without TCX links: how long
//! attaching a 2-instruction pass-through program takes (one RCU grace period), which no
//! loader avoids.
//!
//! Usage: bench-lifecycle [RUNS]  (CHAOS_BIN should point at a release build)

use chaos::{
    net::{Direction, hold_tcx_hooks, tcx_in_use},
    sandbox::{SERVER_V4, Sandbox},
};
use chaos_tests::chaos_bin;
use std::{
    io::{BufRead, BufReader},
    net::UdpSocket,
    process::{Command, Stdio},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

const PORT: u16 = 9999;
const GAP: Duration = Duration::from_micros(50);

struct Stream {
    t0: Instant,
    /// Send offsets from t0, by sequence number.
    sent: Arc<Mutex<Vec<Duration>>>,
    received: Arc<Mutex<Vec<bool>>>,
    stop: Arc<AtomicBool>,
    /// Sender and receiver: joined at the end, so that the next run can bind the port again.
    threads: Vec<std::thread::JoinHandle<()>>,
}

fn start_stream(sb: &Sandbox) -> Stream {
    let t0 = Instant::now();
    let sent = Arc::new(Mutex::new(Vec::new()));
    let received = Arc::new(Mutex::new(vec![false; 1 << 20]));
    let stop = Arc::new(AtomicBool::new(false));
    let rx = sb
        .server_netns()
        .expect("server netns")
        .enter(|| UdpSocket::bind((SERVER_V4, PORT)))
        .expect("enter")
        .expect("bind");
    rx.set_read_timeout(Some(Duration::from_millis(50)))
        .expect("timeout");
    let tx = chaos::netns::Netns::resolve(&sb.client_ns)
        .expect("client netns")
        .enter(|| UdpSocket::bind("0.0.0.0:0"))
        .expect("enter")
        .expect("bind");
    tx.connect((SERVER_V4, PORT)).expect("connect");
    let (r, st) = (received.clone(), stop.clone());
    let receiver = std::thread::spawn(move || {
        let mut buf = [0u8; 4];
        while !st.load(Ordering::Relaxed) {
            if let Ok(4) = rx.recv(&mut buf) {
                let seq = u32::from_be_bytes(buf) as usize;
                if let Some(slot) = r.lock().expect("lock").get_mut(seq) {
                    *slot = true;
                }
            }
        }
    });
    let (s, st) = (sent.clone(), stop.clone());
    let sender = std::thread::spawn(move || {
        let mut seq = 0u32;
        while !st.load(Ordering::Relaxed) && seq < (1 << 20) - 1 {
            let at = t0.elapsed();
            let _ = tx.send(&seq.to_be_bytes());
            s.lock().expect("lock").push(at);
            seq += 1;
            let next = at + GAP;
            while t0.elapsed() < next {
                std::hint::spin_loop();
            }
        }
    });
    Stream {
        t0,
        sent,
        received,
        stop,
        threads: vec![receiver, sender],
    }
}

/// The chaos command line of a network case.
fn net_args(sb: &Sandbox, case: &str) -> Vec<String> {
    let port = PORT.to_string();
    let mut a: Vec<String> = match case {
        "rules8" => {
            let mut a = vec!["net", "rules"]
                .into_iter()
                .map(String::from)
                .collect::<Vec<_>>();
            // Seven rules that miss, then the one that drops the stream.
            for p in 7001..7008 {
                a.extend(["--rule".into(), format!("drop --protocol tcp --dport {p}")]);
            }
            a.extend([
                "--rule".into(),
                format!("drop --protocol udp --dport {port}"),
            ]);
            a
        }
        case => [
            "net",
            "drop",
            "--protocol",
            "udp",
            "--dport",
            &port,
            "--tc-attach",
            case.trim_end_matches("-held"),
        ]
        .map(String::from)
        .to_vec(),
    };
    let rest = [
        "--iface",
        &sb.server_if,
        "--netns",
        &sb.server_ns,
        "--duration",
        "30s",
        "--json",
    ];
    a.extend(rest.map(String::from));
    a
}

/// One run of a network case: returns (inject, detach, exit) in milliseconds.
fn one_run(sb: &Sandbox, case: &str) -> (f64, f64, f64) {
    let mut stream = start_stream(sb);
    std::thread::sleep(Duration::from_millis(100));
    let spawn_at = stream.t0.elapsed();
    let mut child = Command::new(chaos_bin())
        .args(net_args(sb, case))
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn chaos");
    let mut line = String::new();
    // Kept open until chaos exits, so that its summary has a reader.
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
    stdout.read_line(&mut line).expect("attached line");
    std::thread::sleep(Duration::from_millis(200));
    let int_at = stream.t0.elapsed();
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    child.wait().expect("wait chaos");
    drop(stdout);
    let exit_at = stream.t0.elapsed();
    std::thread::sleep(Duration::from_millis(100));
    stream.stop.store(true, Ordering::Relaxed);
    for t in std::mem::take(&mut stream.threads) {
        let _ = t.join();
    }
    std::thread::sleep(Duration::from_millis(60));
    let sent = stream.sent.lock().expect("lock");
    let received = stream.received.lock().expect("lock");
    // Datagrams still in flight when we look are not "lost": only consider those sent 20 ms
    // before the end.
    let first_lost = (0..sent.len())
        .find(|&i| sent[i] >= spawn_at && !received[i])
        .expect("nothing was dropped");
    let first_back = (first_lost..sent.len())
        .find(|&i| sent[i] >= int_at && received[i])
        .expect("traffic never came back");
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    (
        ms(sent[first_lost] - spawn_at),
        ms(sent[first_back] - int_at),
        ms(exit_at - int_at),
    )
}

/// Connects (UDP, so no packet is needed: cgroup connect4 runs on the call) in a loop and
/// prints CLOCK_MONOTONIC in seconds at the first ECONNREFUSED.
const CONNECT_LOOP: &str = r#"
import errno, socket, sys, time
print("ready", flush=True)
while True:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.connect(("10.77.0.2", 9))
    except OSError as e:
        if e.errno == errno.ECONNREFUSED:
            print(time.monotonic(), flush=True)
            break
    finally:
        s.close()
"#;

/// One run of `syscall connect`: (start of chaos -> first refused connect, SIGINT -> exited), ms.
fn connect_run(sb: &Sandbox) -> (f64, f64) {
    let mut victim = sb
        .in_cgroup("python3")
        .args(["-c", CONNECT_LOOP])
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3");
    let mut out = BufReader::new(victim.stdout.take().expect("stdout"));
    let mut line = String::new();
    out.read_line(&mut line).expect("ready");
    let cg = sb.cgroup.to_string_lossy().into_owned();
    let spawn_at = monotonic();
    let args = [
        "syscall",
        "connect",
        "--errno",
        "ECONNREFUSED",
        "--dport",
        "9",
        "--cgroup",
        &cg,
    ];
    let mut child = Command::new(chaos_bin())
        .args(args)
        .args(["--duration", "30s", "--json"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn chaos");
    line.clear();
    out.read_line(&mut line).expect("refused at");
    let refused_at: f64 = line.trim().parse().expect("a time");
    victim.wait().expect("victim");
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
    let mut attached = String::new();
    stdout.read_line(&mut attached).expect("attached line");
    let int_at = monotonic();
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    child.wait().expect("wait chaos");
    ((refused_at - spawn_at) * 1e3, (monotonic() - int_at) * 1e3)
}

/// CLOCK_MONOTONIC in seconds, as Python's time.monotonic() reads it.
fn monotonic() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the timespec we pass.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 / 1e9
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Threads that keep every CPU busy until dropped.
struct Hogs(Arc<AtomicBool>);

impl Hogs {
    fn start() -> Hogs {
        let stop = Arc::new(AtomicBool::new(false));
        let cpus = std::thread::available_parallelism().map_or(2, |n| n.get());
        for _ in 0..cpus {
            let stop = stop.clone();
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    std::hint::spin_loop();
                }
            });
        }
        Hogs(stop)
    }
}

impl Drop for Hogs {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// The kernel's part of a first TCX attach on a host without one, under the same traffic:
/// median milliseconds of `runs` pass-through attaches at the server's ingress (the RCU grace
/// period before the kernel's TCX static key is turned on), or None where a TCX link exists.
fn first_tcx_attach(sb: &Sandbox, runs: usize) -> Option<f64> {
    let netns = sb.server_netns().expect("server netns");
    let mut ms = Vec::new();
    for _ in 0..runs {
        if tcx_in_use() {
            return None;
        }
        let mut stream = start_stream(sb);
        std::thread::sleep(Duration::from_millis(100));
        let t = Instant::now();
        let links = hold_tcx_hooks(&sb.server_if, Some(&netns), &[Direction::Ingress])
            .expect("pass-through TCX link");
        ms.push(t.elapsed().as_secs_f64() * 1e3);
        drop(links);
        stream.stop.store(true, Ordering::Relaxed);
        for t in std::mem::take(&mut stream.threads) {
            let _ = t.join();
        }
    }
    Some(median(ms))
}

/// A pass-through TCX link on the client namespace's loopback, which the stream never uses.
fn hold_elsewhere(sb: &Sandbox) -> Vec<std::os::fd::OwnedFd> {
    let netns = chaos::netns::Netns::resolve(&sb.client_ns).expect("client netns");
    hold_tcx_hooks("lo", Some(&netns), &[Direction::Ingress]).expect("held TCX link")
}

/// Medians of `runs` runs of every case: [(case, start -> fault, SIGINT -> exited)].
fn measure(sb: &Sandbox, runs: usize) -> Vec<(&'static str, f64, f64)> {
    let mut rows = Vec::new();
    match first_tcx_attach(sb, runs) {
        Some(ms) => println!(
            "  kernel   first TCX attach of a 2-instruction program (no chaos) {ms:>5.1} ms"
        ),
        None => println!(
            "  kernel   first TCX attach: not measured, a TCX link exists on this host already"
        ),
    }
    for case in ["tcx", "tcx-held", "cls-bpf", "rules8"] {
        // A TCX link elsewhere on the host, as Cilium's would be: the kernel's TCX hook is on.
        let _held = (case == "tcx-held").then(|| hold_elsewhere(sb));
        if case == "tcx" && tcx_in_use() {
            println!("  (tcx: a TCX link exists on this host already, so this row is tcx-held's)");
        }
        let (mut inj, mut det, mut ex) = (vec![], vec![], vec![]);
        for _ in 0..runs {
            let (i, d, e) = one_run(sb, case);
            inj.push(i);
            det.push(d);
            ex.push(e);
        }
        let (i, e) = (median(inj), median(ex));
        println!(
            "  {case:<8} start->first drop {i:>6.1} ms   SIGINT->traffic back {:>5.1} ms   SIGINT->exited {e:>5.1} ms",
            median(det),
        );
        rows.push((case, i, e));
    }
    let (mut inj, mut ex) = (vec![], vec![]);
    for _ in 0..runs {
        let (i, e) = connect_run(sb);
        inj.push(i);
        ex.push(e);
    }
    let (i, e) = (median(inj), median(ex));
    println!(
        "  connect  start->first refused {i:>6.1} ms                             SIGINT->exited {e:>5.1} ms"
    );
    rows.push(("connect", i, e));
    rows
}

fn main() {
    chaos_tests::require_root();
    let runs: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(10);
    let sb = Sandbox::create("bench").expect("sandbox");
    println!(
        "chaos lifecycle, {runs} runs per case, UDP datagram every {} us, medians; idle:",
        GAP.as_micros()
    );
    let idle = measure(&sb, runs);
    println!("with every CPU kept busy by spinning threads:");
    let hogs = Hogs::start();
    let busy = measure(&sb, runs);
    drop(hogs);
    println!("busy / idle, start -> fault:");
    for ((case, i, _), (_, b, _)) in idle.iter().zip(&busy) {
        println!("  {case:<8} {:.2}", b / i);
    }
}
