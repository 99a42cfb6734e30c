//! TCP throughput through a veth pair, every configuration switched on and off during one
//! long iperf3 transfer: each 200 ms window with a hook is paired with a window without, and
//! the ratio of the pair is taken. Consecutive 2 s iperf3 runs on these machines differ by up
//! to 30 % with nothing attached; windows a quarter of a second apart drift much less.

use crate::{EMPTY, classifier, loaded_with, median, rule};
use aya::programs::{
    LinkOrder, SchedClassifier, TcAttachType,
    tc::{SchedClassifierLinkId, TcAttachOptions},
};
use chaos::{netns::Netns, sandbox::Sandbox};
use chaos_common::{NetRule, THRESHOLD_ALWAYS, maps::PROG_TC_INGRESS};
use chaos_tests::sh;
use std::{
    process::{Child, Command, Stdio},
    thread::sleep,
    time::{Duration, Instant},
};

/// Time for the transfer to settle after a switch, then the measured window.
const SETTLE: Duration = Duration::from_millis(50);
const WINDOW: Duration = Duration::from_millis(200);

fn nsenter(ns: &str) -> Command {
    let mut c = Command::new("nsenter");
    c.arg(format!("--net=/run/netns/{ns}"));
    c
}

/// A classifier loaded once and attached by TCX at the server's ingress (where `chaos net
/// drop --iface` puts it) for each of its windows.
struct Hook {
    obj: aya::Ebpf,
    program: &'static str,
}

impl Hook {
    fn new(mut obj: aya::Ebpf, program: &'static str) -> Hook {
        classifier(&mut obj, program)
            .load()
            .expect("load the classifier");
        Hook { obj, program }
    }

    fn program(&mut self) -> &mut SchedClassifier {
        classifier(&mut self.obj, self.program)
    }

    fn attach(&mut self, ns: &Netns, iface: &str) -> SchedClassifierLinkId {
        let tcx = TcAttachOptions::TcxOrder(LinkOrder::default());
        ns.enter(|| {
            self.program()
                .attach_with_options(iface, TcAttachType::Ingress, tcx)
        })
        .expect("enter netns")
        .expect("attach by TCX")
    }

    fn detach(&mut self, id: SchedClassifierLinkId) {
        self.program().detach(id).expect("detach");
    }
}

/// What one window has switched on.
enum Setup {
    Hook(Hook),
    Iptables,
}

fn iptables(sb: &Sandbox, op: &str) {
    sh(nsenter(&sb.server_ns).args([
        "iptables-legacy",
        op,
        "INPUT",
        "-p",
        "tcp",
        "--dport",
        "5201",
        "-m",
        "statistic",
        "--mode",
        "random",
        "--probability",
        "0.01",
        "-j",
        "DROP",
    ]));
}

/// Bytes received so far on `iface`, in the netns of process `pid`.
fn rx_bytes(pid: u32, iface: &str) -> u64 {
    let dev = std::fs::read_to_string(format!("/proc/{pid}/net/dev")).expect("net/dev");
    dev.lines()
        .find_map(|l| {
            let (name, counters) = l.split_once(':')?;
            (name.trim() == iface).then(|| counters.split_whitespace().next()?.parse().ok())?
        })
        .expect("interface in net/dev")
}

/// Bits per second received during one window, after the settling time.
fn window(pid: u32, iface: &str) -> f64 {
    sleep(SETTLE);
    let (t0, b0) = (Instant::now(), rx_bytes(pid, iface));
    sleep(WINDOW);
    let (t1, b1) = (Instant::now(), rx_bytes(pid, iface));
    (b1 - b0) as f64 * 8.0 / (t1 - t0).as_secs_f64()
}

fn measure(sb: &Sandbox, ns: &Netns, pid: u32, setup: &mut Setup) -> f64 {
    match setup {
        Setup::Hook(h) => {
            let id = h.attach(ns, &sb.server_if);
            let x = window(pid, &sb.server_if);
            h.detach(id);
            x
        }
        Setup::Iptables => {
            iptables(sb, "-A");
            let x = window(pid, &sb.server_if);
            iptables(sb, "-D");
            x
        }
    }
}

pub fn run(pairs: usize) {
    let sb = Sandbox::create("bnet").expect("sandbox");
    let ns = Netns::resolve(&sb.server_ns).expect("netns");
    // Both ends on CPU 0: the packets' whole path (veth, softirq, the hook) runs there too, so
    // the transfer is bound by that one CPU and a cost per packet shows as lost throughput.
    let server = spawn(nsenter(&sb.server_ns).args(["iperf3", "-s", "-A", "0"]));
    sleep(Duration::from_millis(500));
    let drop_1 = NetRule {
        threshold: THRESHOLD_ALWAYS / 100,
        ..rule(5201)
    };
    let mut configs = [
        (
            "empty classifier (the TCX hook)",
            Setup::Hook(Hook::new(loaded_with(None), EMPTY)),
        ),
        (
            "chaos, rule matching nothing",
            Setup::Hook(Hook::new(loaded_with(Some(rule(9))), PROG_TC_INGRESS)),
        ),
        (
            "chaos, drop 1%",
            Setup::Hook(Hook::new(loaded_with(Some(drop_1)), PROG_TC_INGRESS)),
        ),
        ("iptables-legacy statistic, drop 1%", Setup::Iptables),
    ];
    // As containers send (GSO: the hook sees up to 64 KiB per packet), then with segmentation
    // off on the sender so that every 1,500-byte packet passes the hook (the worst case).
    for (offloads, how) in [
        ("on", "segmentation offloads on (as containers send)"),
        (
            "off",
            "TSO/GSO off on the sender (every packet through the hook)",
        ),
    ] {
        sh(nsenter(&sb.client_ns).args([
            "ethtool",
            "-K",
            &sb.client_if,
            "tso",
            offloads,
            "gso",
            offloads,
        ]));
        let client = spawn(nsenter(&sb.client_ns).args([
            "iperf3",
            "-c",
            "10.77.0.2",
            "-A",
            "0",
            "-t",
            "3600",
        ]));
        sleep(Duration::from_secs(1));
        let (base, ratios) = table(&sb, &ns, server.id(), pairs, &mut configs);
        stop(client);
        println!(
            "TCP through veth, one iperf3 stream, {how}, both ends on CPU 0; {pairs} pairs of \
             {} ms windows per row, with and without, alternating; medians:",
            WINDOW.as_millis()
        );
        println!("  {:<36} {:7.2} Gbit/s", "no program", base / 1e9);
        for ((name, _), mut r) in configs.iter().zip(ratios) {
            let m = median(&mut r);
            println!(
                "  {name:<36} ratio {m:.3} (middle half of the pairs {:.3}-{:.3})",
                r[r.len() / 4],
                r[r.len() * 3 / 4]
            );
        }
    }
    stop(server);
    drop(sb);
}

/// The median rate without a program, and each configuration's ratios to its partner window.
fn table(
    sb: &Sandbox,
    ns: &Netns,
    pid: u32,
    pairs: usize,
    configs: &mut [(&str, Setup)],
) -> (f64, Vec<Vec<f64>>) {
    let mut base = Vec::new();
    let mut ratios = vec![Vec::new(); configs.len()];
    for pair in 0..pairs {
        for (i, (_, setup)) in configs.iter_mut().enumerate() {
            // Which window of the pair comes first alternates, so that order effects cancel.
            let (b, x) = if pair % 2 == 0 {
                let b = window(pid, &sb.server_if);
                (b, measure(sb, ns, pid, setup))
            } else {
                let x = measure(sb, ns, pid, setup);
                (window(pid, &sb.server_if), x)
            };
            base.push(b);
            ratios[i].push(x / b);
        }
    }
    (median(&mut base), ratios)
}

fn stop(mut c: Child) {
    let _ = c.kill();
    let _ = c.wait();
}

fn spawn(cmd: &mut Command) -> Child {
    cmd.stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("iperf3")
}
