//! `chaos net corrupt` seen by a real UDP receiver: with --keep-checksum every faulted datagram
//! arrives with exactly one bit flipped; without it the receiving kernel discards them (counted
//! as UDP checksum errors) and the rest arrive intact.

use chaos_tests::{
    Running, assert_programs_gone,
    clients::{snmp, udp_bit_errors},
    lab::Lab,
    stats::binomial_999,
};

const N: u32 = 400;

fn corrupt(lab: &Lab, extra: &[&str]) -> Running {
    let mut args = vec!["--protocol", "udp", "--dport", "9000", "--duration", "60s"];
    args.extend_from_slice(extra);
    Running::start_via(lab.chaos_cmd(), &lab.at_server("corrupt", &args))
}

#[test]
fn keep_checksum_delivers_one_flipped_bit() {
    let lab = Lab::new("cork");
    let fault = corrupt(&lab, &["--keep-checksum", "--percent", "30"]);
    let bits = udp_bit_errors(&lab.sb.server_ns, lab.inside("python3"), N);
    let ids = fault.program_ids.clone();
    let s = fault.interrupt();
    assert_eq!(bits.len() as u32, N, "nothing is dropped");
    assert!(bits.iter().all(|&b| b <= 1), "one bit at most: {bits:?}");
    let flipped = bits.iter().filter(|&&b| b == 1).count() as u64;
    let (lo, hi) = binomial_999(N as u64, 0.3);
    assert!((lo..=hi).contains(&flipped), "{flipped} not in {lo}..={hi}");
    assert_eq!(s["injected"].as_u64(), Some(flipped), "{s}");
    assert_programs_gone(&ids);
    lab.finish();
}

/// Between namespaces a veth hands checksum-offloaded packets to the peer unverified (as any
/// local delivery does), so the sender computes checksums in software here, as traffic from a
/// NIC would be verified.
#[test]
fn broken_checksum_is_discarded_by_the_receiver() {
    let lab = Lab::new("corb");
    let off = std::process::Command::new("nsenter")
        .arg(format!("--net=/run/netns/{}", lab.sb.client_ns))
        .args(["ethtool", "-K", &lab.sb.client_if, "tx", "off"])
        .output()
        .expect("ethtool");
    assert!(
        off.status.success(),
        "ethtool: {}",
        String::from_utf8_lossy(&off.stderr)
    );
    let before = snmp(&lab.sb.server_ns, "Udp", "InCsumErrors");
    let fault = corrupt(&lab, &["--percent", "30"]);
    let bits = udp_bit_errors(&lab.sb.server_ns, lab.inside("python3"), N);
    let ids = fault.program_ids.clone();
    let s = fault.interrupt();
    let errors = snmp(&lab.sb.server_ns, "Udp", "InCsumErrors") - before;
    assert!(bits.iter().all(|&b| b == 0), "what arrives is intact");
    let lost = N as u64 - bits.len() as u64;
    let (lo, hi) = binomial_999(N as u64, 0.3);
    assert!((lo..=hi).contains(&lost), "{lost} not in {lo}..={hi}");
    assert_eq!(s["injected"].as_u64(), Some(lost), "{s}");
    assert_eq!(errors, lost, "every corrupted datagram failed the checksum");
    assert_programs_gone(&ids);
    lab.finish();
}
