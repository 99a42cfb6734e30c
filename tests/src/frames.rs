//! Hand-built Ethernet frames for running the classifier with BPF_PROG_TEST_RUN.

/// A 64-byte Ethernet + IPv4 frame, 10.0.0.1:40000 -> 10.0.0.2:`dport`, carrying `protocol`
/// (chaos_common::PROTO_TCP: a SYN; PROTO_UDP: an 8-byte header and 22 bytes of payload).
/// Checksums are zero: the classifier does not check them.
pub fn ipv4(protocol: u8, dport: u16) -> Vec<u8> {
    let mut p = vec![0u8; 64];
    p[12..14].copy_from_slice(&0x0800u16.to_be_bytes()); // EtherType IPv4
    p[14] = 0x45; // version 4, 20-byte header
    p[16..18].copy_from_slice(&50u16.to_be_bytes()); // total length
    p[22] = 64; // TTL
    p[23] = protocol;
    p[26..30].copy_from_slice(&[10, 0, 0, 1]);
    p[30..34].copy_from_slice(&[10, 0, 0, 2]);
    p[34..36].copy_from_slice(&40000u16.to_be_bytes());
    p[36..38].copy_from_slice(&dport.to_be_bytes());
    if protocol == chaos_common::PROTO_TCP {
        p[46] = 0x50; // data offset: 5 words
        p[47] = 0x02; // SYN
    } else {
        p[38..40].copy_from_slice(&30u16.to_be_bytes()); // UDP length
    }
    p
}
