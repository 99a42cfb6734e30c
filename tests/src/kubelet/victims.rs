//! Victims for the Kubernetes tests: containers that connect (TCP) or send datagrams (UDP) to
//! the node ten times a second, and counters of what arrives there.

use super::{Node, Pod};
use std::{
    io::Read as _,
    net::TcpListener,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

/// Counts the TCP connections accepted on a port, in a thread.
pub struct Counter {
    pub port: u16,
    count: Arc<AtomicU64>,
}

impl Counter {
    pub fn start() -> Counter {
        let l = TcpListener::bind("0.0.0.0:0").expect("listen");
        let port = l.local_addr().expect("addr").port();
        let count = Arc::new(AtomicU64::new(0));
        let c = count.clone();
        std::thread::spawn(move || {
            for s in l.incoming().flatten() {
                c.fetch_add(1, Ordering::Relaxed);
                let mut s = s;
                let _ = s.set_read_timeout(Some(Duration::from_millis(200)));
                let _ = s.read(&mut [0u8; 8]);
            }
        });
        Counter { port, count }
    }

    pub fn now(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }
}

/// A container that connects to `port` on the node (the pod network's gateway) ten times a
/// second, forever.
pub fn connector(gateway: &str, port: u16) -> Vec<String> {
    vec![
        "sh".into(),
        "-c".into(),
        format!("while true; do echo x | nc {gateway} {port}; sleep 0.1; done"),
    ]
}

pub fn run(node: &mut Node, pod: &Pod, name: &str, cmd: &[String]) -> String {
    let cmd: Vec<&str> = cmd.iter().map(String::as_str).collect();
    node.run_container(pod, name, &cmd)
}

/// Waits until each counter has moved, so that every victim is running before the fault.
pub fn wait_moving(counters: &[&Counter]) {
    let start: Vec<u64> = counters.iter().map(|c| c.now()).collect();
    for _ in 0..100 {
        if counters.iter().zip(&start).all(|(c, s)| c.now() > *s + 2) {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("the victims are not connecting");
}

/// Counts the UDP datagrams received on a port, in a thread.
pub struct UdpCounter {
    pub port: u16,
    count: Arc<AtomicU64>,
}

impl UdpCounter {
    pub fn start() -> UdpCounter {
        let sock = std::net::UdpSocket::bind("0.0.0.0:0").expect("bind");
        let port = sock.local_addr().expect("addr").port();
        let count = Arc::new(AtomicU64::new(0));
        let c = count.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 64];
            while sock.recv(&mut buf).is_ok() {
                c.fetch_add(1, Ordering::Relaxed);
            }
        });
        UdpCounter { port, count }
    }

    pub fn now(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }
}

/// A container that sends a UDP datagram to `port` on the node about ten times a second: a
/// TFTP read request (busybox's nc has no UDP; its tftp sends with sendto, each request a
/// datagram), the client killed before it retries.
pub fn udp_sender(gateway: &str, port: u16) -> Vec<String> {
    vec![
        "sh".into(),
        "-c".into(),
        format!(
            "while true; do tftp -g -r x -l /dev/null {gateway} {port} & sleep 0.1; \
             kill $! 2>/dev/null; done"
        ),
    ]
}
