//! The demo's workload: a UDP echo and a TCP accept loop (server threads inside the server
//! namespace), and a client process (`chaos demo-client`) that measures what it gets.

use serde::{Deserialize, Serialize};
use std::{
    collections::HashSet,
    io::ErrorKind,
    net::{SocketAddr, TcpListener, TcpStream, UdpSocket},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

pub const UDP_PORT: u16 = 7000;
pub const TCP_PORT: u16 = 7001;

#[derive(Debug, clap::Args)]
pub struct ClientArgs {
    /// UDP echo server to send datagrams to.
    #[arg(long)]
    udp: SocketAddr,
    /// TCP server to connect to.
    #[arg(long)]
    tcp: SocketAddr,
    /// Datagrams to send.
    #[arg(long, default_value = "500")]
    count: u32,
    /// TCP connection attempts.
    #[arg(long, default_value = "20")]
    tries: u32,
}

/// What the client saw, as one JSON line on stdout.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Seen {
    pub udp_sent: u32,
    pub udp_echoed: u32,
    pub tcp_tries: u32,
    pub tcp_connected: u32,
    pub tcp_refused: u32,
    pub tcp_other: u32,
}

pub fn client(a: ClientArgs) -> std::io::Result<Seen> {
    let mut seen = Seen {
        udp_sent: a.count,
        tcp_tries: a.tries,
        ..Seen::default()
    };
    let sock = UdpSocket::bind("0.0.0.0:0")?;
    sock.connect(a.udp)?;
    sock.set_read_timeout(Some(Duration::from_millis(300)))?;
    let receiver = sock.try_clone()?;
    let rx = std::thread::spawn(move || {
        let mut got = HashSet::new();
        let mut buf = [0u8; 4];
        while let Ok(4) = receiver.recv(&mut buf) {
            got.insert(u32::from_be_bytes(buf));
        }
        got.len() as u32
    });
    for i in 0..a.count {
        sock.send(&i.to_be_bytes())?;
        std::thread::sleep(Duration::from_millis(1));
    }
    seen.udp_echoed = rx.join().unwrap_or(0);
    for _ in 0..a.tries {
        match TcpStream::connect_timeout(&a.tcp, Duration::from_secs(1)) {
            Ok(_) => seen.tcp_connected += 1,
            Err(e) if e.kind() == ErrorKind::ConnectionRefused => seen.tcp_refused += 1,
            Err(_) => seen.tcp_other += 1,
        }
    }
    Ok(seen)
}

/// Server threads; they stop when this is dropped.
pub struct Servers {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl Servers {
    /// Binds in the calling thread's namespace, then serves from two threads.
    pub fn start(udp: SocketAddr, tcp: SocketAddr) -> std::io::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let u = UdpSocket::bind(udp)?;
        u.set_read_timeout(Some(Duration::from_millis(50)))?;
        let t = TcpListener::bind(tcp)?;
        t.set_nonblocking(true)?;
        let (s1, s2) = (stop.clone(), stop.clone());
        let echo = std::thread::spawn(move || {
            let mut buf = [0u8; 64];
            while !s1.load(Ordering::Relaxed) {
                if let Ok((n, peer)) = u.recv_from(&mut buf) {
                    let _ = u.send_to(&buf[..n], peer);
                }
            }
        });
        let accept = std::thread::spawn(move || {
            while !s2.load(Ordering::Relaxed) {
                match t.accept() {
                    Ok(_) => {}
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Ok(Self {
            stop,
            threads: vec![echo, accept],
        })
    }
}

impl Drop for Servers {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let deadline = Instant::now() + Duration::from_secs(2);
        for t in self.threads.drain(..) {
            if Instant::now() < deadline {
                let _ = t.join();
            }
        }
    }
}
