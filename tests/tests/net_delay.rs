//! `chaos net delay`: Earliest Departure Time honoured by fq, which chaos installs and removes.
//! This machine's kernel has no fq: there the test checks the clear refusal; in the Debian VMs
//! (cargo xtask vm) it measures the added latency.

use chaos_tests::{
    Running,
    clients::{ping, ping_rtts, udp_exchange},
    kernel_has,
    lab::{CLIENT_V4, Lab, SERVER_V4},
    sh,
    stats::binomial_999,
};
use std::process::Command;

fn rtt(p: &chaos_tests::clients::Ping) -> [f64; 4] {
    p.rtt.unwrap_or_else(|| panic!("no RTT: {p:?}"))
}

#[test]
fn delay_adds_latency_and_jitter_then_restores_the_qdisc() {
    let lab = Lab::new("dly");
    let before = lab.server_qdiscs();
    let dst = SERVER_V4.to_string();
    // Only replies to the client: the exact loss count below must not include IPv6 neighbour
    // discovery (ICMPv6 is --protocol icmp too).
    let client = CLIENT_V4.to_string();
    let base = lab.at_server("delay", &["--protocol", "icmp", "--dst", &client]);
    if !kernel_has(
        "fq",
        "delay_adds_latency_and_jitter_then_restores_the_qdisc",
    ) {
        let (code, out, err) =
            lab.run(&[&base[..], &["--latency", "100ms", "--duration", "5s"]].concat());
        assert_eq!(code, 1, "{out} {err}");
        assert!(
            err.contains("fq qdisc (sch_fq)") && err.contains("chaos doctor"),
            "{err}"
        );
        assert_eq!(lab.server_qdiscs(), before, "nothing changed");
        lab.finish();
        return;
    }
    let healthy = rtt(&ping(lab.outside("ping"), &dst, 20, "0.05"));

    let case = DelayCase {
        lab: &lab,
        base: &base,
        dst: &dst,
        healthy,
        before: &before,
    };
    case.plain();
    case.jitter();
    case.with_loss();
    assert_eq!(
        ping(lab.outside("ping"), &dst, 10, "0.05")
            .rtt
            .map(|r| r[1] < healthy[1] + 20.0),
        Some(true)
    );
    lab.finish();
}

/// One lab's delay cases: each starts a fault from `base`, pings the server from outside and
/// checks the round trips against the healthy ones, then that the qdiscs are as `before`.
struct DelayCase<'a> {
    lab: &'a Lab,
    base: &'a [&'a str],
    dst: &'a str,
    healthy: [f64; 4],
    before: &'a str,
}

impl DelayCase<'_> {
    fn plain(&self) {
        let (lab, base, dst, healthy, before) =
            (self.lab, self.base, self.dst, self.healthy, self.before);
        // 100 ms on the server's egress delays every echo reply.
        let fault = lab.start(&[base, &["--latency", "100ms", "--duration", "60s"]].concat());
        assert!(
            lab.server_qdiscs().contains("qdisc fq "),
            "fq installed: {}",
            lab.server_qdiscs()
        );
        let delayed = rtt(&ping(lab.outside("ping"), dst, 20, "0.05"));
        let s = fault.interrupt();
        let added = delayed[1] - healthy[1];
        println!(
            "RTT ms min/avg/max/mdev: healthy {healthy:?}, delayed 100ms {delayed:?} (+{added:.1})"
        );
        assert!(
            (90.0..=110.0).contains(&added),
            "added {added:.1} ms (healthy {healthy:?}, delayed {delayed:?}), {s}"
        );
        assert_eq!(lab.server_qdiscs(), before, "qdisc restored exactly");
    }

    fn jitter(&self) {
        let (lab, base, dst, healthy, before) =
            (self.lab, self.base, self.dst, self.healthy, self.before);
        // +- 40 ms of jitter spreads the round trips around the same mean.
        let fault = lab.start(
            &[
                base,
                &[
                    "--latency",
                    "100ms",
                    "--jitter",
                    "40ms",
                    "--duration",
                    "60s",
                ],
            ]
            .concat(),
        );
        let jittered = rtt(&ping(lab.outside("ping"), dst, 50, "0.05"));
        fault.interrupt();
        let spread = jittered[2] - jittered[0];
        println!("RTT ms with 100ms +- 40ms: {jittered:?}");
        assert!(
            spread > 30.0 && jittered[3] > 8.0,
            "jitter visible: {jittered:?}"
        );
        assert!(
            jittered[0] - healthy[1] > 55.0,
            "nothing faster than latency - jitter: {jittered:?}"
        );
        assert!(
            (80.0..=120.0).contains(&(jittered[1] - healthy[1])),
            "mean near the latency: {jittered:?}"
        );
        assert_eq!(lab.server_qdiscs(), before, "qdisc restored exactly");
    }

    fn with_loss(&self) {
        let (lab, base, dst, healthy, before) =
            (self.lab, self.base, self.dst, self.healthy, self.before);
        // Combined on one rule: 50 ms for every reply, and 20 % of them lost (netem's
        // "delay 50ms loss 20%").
        let args = ["--latency", "50ms", "--loss", "20", "--duration", "60s"];
        let fault = lab.start(&[base, &args[..]].concat());
        let p = ping(lab.outside("ping"), dst, 200, "0.02");
        let s = fault.interrupt();
        let (lo, hi) = binomial_999(200, 0.2);
        println!(
            "50ms and 20 % loss: ping lost {} of 200; chaos: {s}",
            p.lost()
        );
        // What chaos dropped is what ping missed, then the probability: a failure says which of
        // the two went wrong.
        assert_eq!(s["lost"].as_u64(), Some(p.lost()), "ping {p:?}, chaos {s}");
        assert!(
            (lo..=hi).contains(&p.lost()),
            "{} lost of 200, expected {lo}..={hi}: {s}",
            p.lost()
        );
        assert!(rtt(&p)[0] - healthy[1] > 40.0, "every reply delayed: {p:?}");
        assert_eq!(lab.server_qdiscs(), before, "qdisc restored exactly");
    }
}

/// SIGKILL leaves fq installed (a qdisc is not tied to a process); the record written before
/// installing it lets `chaos cleanup` put the default back.
#[test]
fn sigkilled_delay_leaves_a_record_that_cleanup_restores() {
    let lab = Lab::new("dlyk");
    if !kernel_has(
        "fq",
        "sigkilled_delay_leaves_a_record_that_cleanup_restores",
    ) {
        lab.finish();
        return;
    }
    let before = lab.server_qdiscs();
    let args = lab.at_server("delay", &["--latency", "50ms", "--duration", "60s"]);
    Running::start_via(lab.chaos_cmd(), &args).kill();
    assert!(
        lab.server_qdiscs().contains("qdisc fq "),
        "fq outlives SIGKILL"
    );
    let (code, _, err) = chaos_tests::chaos_via(lab.chaos_cmd(), &["cleanup"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(lab.server_qdiscs(), before, "default qdisc restored");
    lab.finish();
}

/// Two delay faults on one interface share the fq the first installed: it stays while either
/// acts, whichever stops first (also when the first is SIGKILLed and `chaos cleanup` runs), and
/// the last one restores the default; an fq the operator installed stays.
#[test]
fn two_delay_faults_share_fq_whichever_stops_first() {
    let lab = Lab::new("dlys");
    if !kernel_has("fq", "two_delay_faults_share_fq_whichever_stops_first") {
        lab.finish();
        return;
    }
    let before = lab.server_qdiscs();
    let (dst, client) = (SERVER_V4.to_string(), CLIENT_V4.to_string());
    // The first delays UDP, which nothing here sends; the second the echo replies.
    let udp = lab.at_server(
        "delay",
        &[
            "--protocol",
            "udp",
            "--latency",
            "30ms",
            "--duration",
            "60s",
        ],
    );
    let icmp = lab.at_server(
        "delay",
        &[
            "--protocol",
            "icmp",
            "--dst",
            &client,
            "--latency",
            "100ms",
            "--duration",
            "60s",
        ],
    );
    let mean_rtt = || rtt(&ping(lab.outside("ping"), &dst, 10, "0.05"))[1];
    let healthy = mean_rtt();
    for how in ["interrupted", "SIGKILLed"] {
        let first = lab.start(&udp);
        let second = lab.start(&icmp);
        if how == "interrupted" {
            first.interrupt();
        } else {
            first.kill();
            let (code, out, err) = lab.run(&["cleanup"]);
            assert_eq!(code, 0, "{out} {err}");
        }
        assert!(
            lab.server_qdiscs().contains("qdisc fq "),
            "first {how}: fq stays while the second uses it: {}",
            lab.server_qdiscs()
        );
        let added = mean_rtt() - healthy;
        assert!(
            (90.0..=130.0).contains(&added),
            "first {how}: the second still delays, +{added:.1} ms"
        );
        second.interrupt();
        assert_eq!(
            lab.server_qdiscs(),
            before,
            "first {how}: the last restores the default"
        );
    }

    let (ns, dev) = (&lab.sb.server_ns, &lab.sb.server_if);
    sh(Command::new("tc").args(["-n", ns, "qdisc", "replace", "dev", dev, "root", "fq"]));
    let operators = lab.server_qdiscs();
    let (first, second) = (lab.start(&udp), lab.start(&icmp));
    first.interrupt();
    second.interrupt();
    assert_eq!(lab.server_qdiscs(), operators, "the operator's fq stays");
    sh(Command::new("tc").args(["-n", ns, "qdisc", "del", "dev", dev, "root"]));
    lab.finish();
}

/// reorder: 30 % of the datagrams leave at once, the rest 50 ms later, so the early ones arrive
/// ahead of datagrams sent before them; none is lost and the qdisc is restored.
#[test]
fn reorder_sends_some_datagrams_ahead() {
    let lab = Lab::new("ror");
    if !kernel_has("fq", "reorder_sends_some_datagrams_ahead") {
        lab.finish();
        return;
    }
    let (iface, ns) = (lab.sb.client_if.clone(), lab.sb.client_ns.clone());
    let args = [
        "net",
        "reorder",
        "--iface",
        &iface,
        "--netns",
        &ns,
        "--latency",
        "50ms",
        "--percent",
        "30",
        "--protocol",
        "udp",
        "--dport",
        "9000",
        "--duration",
        "60s",
    ];
    let fault = Running::start_via(lab.chaos_cmd(), &args);
    let n = 300;
    let got = udp_exchange(&lab.sb.server_ns, lab.inside("python3"), n);
    let s = fault.interrupt();
    assert_eq!(got.len() as u32, n, "reordered, not lost: {got:?}");
    // Early: a datagram that arrived before one with a lower sequence number.
    let mut later_min = vec![u32::MAX; got.len() + 1];
    for i in (0..got.len()).rev() {
        later_min[i] = later_min[i + 1].min(got[i]);
    }
    let early = (0..got.len())
        .filter(|&i| later_min[i + 1] < got[i])
        .count() as u64;
    let injected = s["injected"].as_u64().expect("injected");
    let (lo, hi) = binomial_999(n as u64, 0.3);
    assert!(
        (lo..=hi).contains(&injected),
        "{injected} not in {lo}..={hi}"
    );
    // Every datagram sent at once overtakes the delayed ones before it, unless they too were
    // sent at once (a handful at most, e.g. the very first datagrams).
    assert!(
        early <= injected && early + 5 >= injected,
        "early {early} vs sent at once {injected}: {got:?}"
    );
    lab.finish();
}

/// --distribution normal: the jitter is a standard deviation, so replies stray beyond it
/// (uniform jitter of the same size never goes past +-jitter); --correlation makes successive
/// delays drift instead of jumping (netem's delay correlation).
#[test]
fn delay_distribution_and_correlation() {
    let lab = Lab::new("dlyn");
    if !kernel_has("fq", "delay_distribution_and_correlation") {
        lab.finish();
        return;
    }
    let dst = SERVER_V4.to_string();
    let base = lab.at_server("delay", &["--protocol", "icmp", "--duration", "60s"]);
    let healthy = rtt(&ping(lab.outside("ping"), &dst, 10, "0.05"))[1];
    let sample = |extra: &[&str]| {
        let fault = lab.start(&[&base[..], extra].concat());
        let rtts: Vec<f64> = ping_rtts(lab.outside("ping"), &dst, 200, "0.02")
            .into_iter()
            .map(|t| t - healthy)
            .collect();
        fault.interrupt();
        assert!(rtts.len() >= 195, "replies lost: {}", rtts.len());
        rtts
    };
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let sd = |v: &[f64]| {
        let m = mean(v);
        (v.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / v.len() as f64).sqrt()
    };
    // The median step between successive RTTs: an emulated guest stalls now and then, and one
    // stall makes two large steps that would dominate a mean.
    let step = |v: &[f64]| {
        let mut steps: Vec<f64> = v.windows(2).map(|w| (w[1] - w[0]).abs()).collect();
        steps.sort_by(f64::total_cmp);
        steps[steps.len() / 2]
    };

    let normal = sample(&[
        "--latency",
        "100ms",
        "--jitter",
        "20ms",
        "--distribution",
        "normal",
    ]);
    let beyond = normal.iter().filter(|d| (*d - 100.0).abs() > 25.0).count();
    println!(
        "normal 100ms sd 20ms: mean {:.1} sd {:.1}, {beyond} of {} beyond +-25 ms",
        mean(&normal),
        sd(&normal),
        normal.len()
    );
    assert!((90.0..=110.0).contains(&mean(&normal)), "{normal:?}");
    assert!(
        (14.0..=26.0).contains(&sd(&normal)),
        "sd {:.1}",
        sd(&normal)
    );
    // P(|z| > 1.25) = 21 %: about 42 of 200; uniform +-20 ms would give none.
    assert!(beyond >= 15, "{beyond} beyond +-25 ms: {normal:?}");

    let jumpy = sample(&["--latency", "100ms", "--jitter", "40ms"]);
    let drifting = sample(&[
        "--latency",
        "100ms",
        "--jitter",
        "40ms",
        "--correlation",
        "95",
    ]);
    println!(
        "uniform +-40ms: median step {:.1} ms; with correlation 95%: {:.1} ms",
        step(&jumpy),
        step(&drifting)
    );
    // Independent uniform draws 80 ms wide differ by 23 ms or more half the time (median
    // 80 (1 - 1/sqrt 2)); with 95 % correlation successive delays move by a few ms.
    assert!(step(&jumpy) > 15.0, "{jumpy:?}");
    assert!(step(&drifting) < 10.0, "{drifting:?}");
    lab.finish();
}
