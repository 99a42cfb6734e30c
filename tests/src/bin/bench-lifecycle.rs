//! Benchmark (not a test): how fast a fault starts and stops, seen by real traffic.
//!
//! A sender in the lab's client namespace sends one UDP datagram every 50 µs carrying its
//! sequence number; a receiver in the server namespace records which arrive. chaos drops
//! 100 % of them at the server's ingress. Measured per run:
//! - inject: from spawning `chaos net drop` to the send time of the first datagram lost;
//! - detach: from SIGINT to the send time of the first datagram that arrives again;
//! - exit:   from SIGINT to the chaos process having exited.
//!
//! Usage: bench-lifecycle [RUNS]  (CHAOS_BIN should point at a release build)

use chaos::sandbox::{SERVER_V4, Sandbox};
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
    std::thread::spawn(move || {
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
    std::thread::spawn(move || {
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
    }
}

/// One run: returns (inject, detach, exit) in milliseconds.
fn one_run(sb: &Sandbox, mode: &str) -> (f64, f64, f64) {
    let stream = start_stream(sb);
    std::thread::sleep(Duration::from_millis(100));
    let spawn_at = stream.t0.elapsed();
    let mut child = Command::new(chaos_bin())
        .args([
            "net",
            "drop",
            "--iface",
            &sb.server_if,
            "--netns",
            &sb.server_ns,
            "--protocol",
            "udp",
        ])
        .args([
            "--dport",
            &PORT.to_string(),
            "--duration",
            "30s",
            "--tc-attach",
            mode,
            "--json",
        ])
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

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    chaos_tests::require_root();
    let runs: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(10);
    let sb = Sandbox::create("bench").expect("sandbox");
    println!(
        "chaos lifecycle, {runs} runs per mode, UDP datagram every {} us, medians:",
        GAP.as_micros()
    );
    for mode in ["tcx", "cls-bpf"] {
        let (mut inj, mut det, mut ex) = (vec![], vec![], vec![]);
        for _ in 0..runs {
            let (i, d, e) = one_run(&sb, mode);
            inj.push(i);
            det.push(d);
            ex.push(e);
        }
        println!(
            "  {mode:<8} start->first drop {:>6.1} ms   SIGINT->traffic back {:>5.1} ms   SIGINT->exited {:>5.1} ms   (min/max first drop {:.1}/{:.1})",
            median(inj.clone()),
            median(det),
            median(ex),
            inj.iter().cloned().fold(f64::MAX, f64::min),
            inj.iter().cloned().fold(0.0, f64::max)
        );
    }
}
