//! `chaos net duplicate`: the receiver sees each matching datagram twice, and the copy is not
//! duplicated again when it passes the hook (no clone loop).

use chaos_tests::{assert_programs_gone, clients::udp_exchange, lab::Lab, stats::binomial_999};

const N: u32 = 300;

/// Sends N datagrams from the client namespace; returns (received, distinct) at the server.
fn exchange(lab: &Lab) -> (u64, u64) {
    let got = udp_exchange(&lab.sb.server_ns, lab.outside("python3"), N);
    let distinct: std::collections::HashSet<_> = got.iter().collect();
    (got.len() as u64, distinct.len() as u64)
}

#[test]
fn duplicates_reach_the_receiver_once_more_each() {
    let lab = Lab::new("dup");
    let filter = ["--protocol", "udp", "--dport", "9000", "--duration", "60s"];
    assert_eq!(exchange(&lab), (N as u64, N as u64), "baseline");

    // 100 % at the receiver's ingress: every datagram arrives twice.
    let args = [
        &lab.at_server("duplicate", &["--direction", "ingress"])[..],
        &filter[..],
    ]
    .concat();
    let fault = lab.start(&args);
    let (total, distinct) = exchange(&lab);
    let ids = fault.program_ids.clone();
    let s = fault.interrupt();
    assert_eq!((total, distinct), (2 * N as u64, N as u64), "{s}");
    assert_eq!(s["injected"], N, "{s}");
    assert_programs_gone(&ids);

    // 30 % at the sender's egress: the extra copies follow the probability.
    let args = [
        &[
            "net",
            "duplicate",
            "--iface",
            &lab.sb.client_if,
            "--netns",
            &lab.sb.client_ns,
            "--direction",
            "egress",
            "--percent",
            "30",
        ][..],
        &filter[..],
    ]
    .concat();
    let fault = lab.start(&args);
    let (total, distinct) = exchange(&lab);
    let s = fault.interrupt();
    let extra = total - N as u64;
    let (lo, hi) = binomial_999(N as u64, 0.3);
    assert_eq!(distinct, N as u64);
    // Delivery first (every copy the kernel sent arrived), then the probability: a failure
    // says which of the two went wrong.
    assert_eq!(s["injected"], extra, "copies sent vs received: {s}");
    assert!(
        (lo..=hi).contains(&extra),
        "{extra} copies for {N}, expected {lo}..={hi}: {s}"
    );

    // Combined on one rule: every datagram duplicated, and 30 % of them lost instead.
    let args = [
        &lab.at_server("duplicate", &["--direction", "ingress", "--loss", "30"])[..],
        &filter[..],
    ]
    .concat();
    let fault = lab.start(&args);
    let (total, distinct) = exchange(&lab);
    let s = fault.interrupt();
    let lost = N as u64 - distinct;
    let (lo, hi) = binomial_999(N as u64, 0.3);
    assert!(
        (lo..=hi).contains(&lost),
        "{lost} lost of {N}, expected {lo}..={hi}"
    );
    assert_eq!(total, 2 * distinct, "every datagram not lost arrives twice");
    assert_eq!(
        (
            s["lost"].as_u64(),
            s["injected"].as_u64(),
            s["matched"].as_u64()
        ),
        (Some(lost), Some(distinct), Some(N as u64)),
        "{s}"
    );
    assert_eq!(exchange(&lab), (N as u64, N as u64), "after chaos");
    lab.finish();
}
