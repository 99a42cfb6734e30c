//! `chaos net rules`: several rules on one interface in one program per hook (a rule set in
//! maps). Each rule hits only its own traffic and counts it; traffic no rule names passes.

use chaos_tests::{
    Running, assert_programs_gone,
    clients::{connect, ping, udp_exchange},
    lab::{Lab, SERVER_V4},
    stats::binomial_999,
};

const N: u32 = 200;

#[test]
fn three_rules_share_one_program() {
    let lab = Lab::new("rules");
    let _srv = lab.tcp_server(&["10.77.0.2:7001", "10.77.0.2:7002"]);
    let (iface, ns) = (lab.sb.server_if.clone(), lab.sb.server_ns.clone());
    let fault = Running::start_via(
        lab.chaos_cmd(),
        &[
            "net",
            "rules",
            "--iface",
            &iface,
            "--netns",
            &ns,
            "--duration",
            "60s",
            "--rule",
            "duplicate --protocol udp --dport 9000",
            "--rule",
            "drop --protocol tcp --dport 7001",
            "--rule",
            "drop --protocol icmp --percent 50",
        ],
    );
    // One classifier, at ingress, for all three rules.
    assert_eq!(fault.program_ids.len(), 1, "{:?}", fault.program_ids);
    let tcx: Vec<String> = lab
        .attachments()
        .lines()
        .filter(|l| l.starts_with("tcx ") && l.contains("chaos"))
        .map(String::from)
        .collect();
    let on_tcx = usize::from(fault.backend == "tcx");
    assert_eq!(tcx.len(), on_tcx, "one program on the interface: {tcx:?}");

    let got = udp_exchange(&ns, lab.outside("python3"), N);
    let dropped = connect(lab.outside("python3"), "10.77.0.2", 7001, "tcp");
    let control = connect(lab.outside("python3"), "10.77.0.2", 7002, "tcp");
    let p = ping(lab.outside("ping"), &SERVER_V4.to_string(), N, "0.01");
    let ids = fault.program_ids.clone();
    let s = fault.interrupt();

    assert_eq!(got.len() as u32, 2 * N, "every datagram twice: {s}");
    assert_ne!(dropped, 0, "port 7001 connected through the drop rule");
    assert_eq!(control, 0, "port 7002, named by no rule, must connect");
    let (lo, hi) = binomial_999(N as u64, 0.5);
    assert!(
        (lo..=hi).contains(&p.lost()),
        "{} pings lost of {N}",
        p.lost()
    );
    let rules = s["rules"].as_array().expect("per-rule counters");
    assert_eq!(rules.len(), 3, "{s}");
    assert_eq!(rules[0]["injected"], N, "{s}");
    assert!(rules[1]["injected"].as_u64() >= Some(1), "{s}");
    // Every lost ping was this rule's drop (other ICMP may have met it too).
    let (matched, injected) = (rules[2]["matched"].as_u64(), rules[2]["injected"].as_u64());
    let (matched, injected) = (matched.unwrap_or(0), injected.unwrap_or(0));
    let (lo, hi) = binomial_999(matched, 0.5);
    assert!(injected >= p.lost() && (lo..=hi).contains(&injected), "{s}");
    assert_programs_gone(&ids);
    lab.finish();
}

/// A rule with an option of the set, or a broken one, is refused naming the rule; nothing runs.
#[test]
fn bad_rules_are_refused_by_number() {
    let lab = Lab::new("rulesbad");
    let (iface, ns) = (lab.sb.server_if.clone(), lab.sb.server_ns.clone());
    let base = [
        "net",
        "rules",
        "--iface",
        &iface,
        "--netns",
        &ns,
        "--duration",
        "5s",
    ];
    for (rule, want) in [
        ("drop --duration 5s", "belongs to the set"),
        ("drop --percent 150", "0 to 100"),
        ("explode", "rule 2"),
    ] {
        let args = [&base[..], &["--rule", "drop --dport 1", "--rule", rule]].concat();
        let (code, out, err) = chaos_tests::chaos_via(lab.chaos_cmd(), &args);
        assert_eq!(code, 2, "{rule}: {out} {err}");
        assert!(
            err.contains("--rule") && err.contains(want),
            "{rule}: {err}"
        );
        lab.assert_nothing_attached();
    }
    lab.finish();
}

/// Faults on two interfaces at once (each chaos owns its own program and rule set): UDP to the
/// server dropped at the server's ingress while pings from the client are dropped at the
/// client's egress; stopping one leaves the other in force.
#[test]
fn two_interfaces_at_once() {
    let lab = Lab::new("twoif");
    let server = lab.drop_at_server(&["--protocol", "udp", "--dport", "9000", "--duration", "60s"]);
    let client = Running::start_via(
        lab.chaos_cmd(),
        &[
            "net",
            "drop",
            "--iface",
            &lab.sb.client_if,
            "--netns",
            &lab.sb.client_ns,
            "--direction",
            "egress",
            "--protocol",
            "icmp",
            "--duration",
            "60s",
        ],
    );
    let dst = SERVER_V4.to_string();
    assert!(udp_exchange(&lab.sb.server_ns, lab.outside("python3"), 50).is_empty());
    assert_eq!(ping(lab.outside("ping"), &dst, 20, "0.01").received, 0);
    let ids = server.program_ids.clone();
    let s = server.interrupt();
    assert_eq!(s["injected"], 50, "{s}");
    assert_programs_gone(&ids);
    // The client-side fault is still in force; the server side passes UDP again.
    assert_eq!(
        udp_exchange(&lab.sb.server_ns, lab.outside("python3"), 50).len(),
        50
    );
    assert_eq!(ping(lab.outside("ping"), &dst, 20, "0.01").received, 0);
    let ids = client.program_ids.clone();
    client.interrupt();
    assert_programs_gone(&ids);
    lab.finish();
}

/// --dry-run applies to every rule of the set, and SIGUSR1 turns every one of them live.
#[test]
fn dry_run_set_goes_live_together() {
    let lab = Lab::new("rulesdry");
    let fault = Running::start_via(
        lab.chaos_cmd(),
        &[
            "net",
            "rules",
            "--iface",
            &lab.sb.server_if,
            "--netns",
            &lab.sb.server_ns,
            "--duration",
            "60s",
            "--dry-run",
            "--rule",
            "drop --protocol udp --dport 9000",
            "--rule",
            "drop --protocol icmp",
        ],
    );
    let dst = SERVER_V4.to_string();
    let udp = |lab: &Lab| udp_exchange(&lab.sb.server_ns, lab.outside("python3"), 50).len();
    assert_eq!(udp(&lab), 50, "dry run: nothing dropped");
    assert_eq!(ping(lab.outside("ping"), &dst, 20, "0.01").received, 20);
    fault.signal(libc::SIGUSR1);
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert_eq!(udp(&lab), 0, "live: the first rule drops");
    assert_eq!(
        ping(lab.outside("ping"), &dst, 20, "0.01").received,
        0,
        "and the second"
    );
    let s = fault.interrupt();
    let rules = s["rules"].as_array().expect("rules");
    // Each counted what it would have dropped, then what it dropped (ICMP: the 40 pings and
    // any error message the exchanges caused).
    assert_eq!(rules[0]["injected"], 100, "{s}");
    assert!(rules[1]["injected"].as_u64() >= Some(40), "{s}");
    lab.finish();
}
