//! Real clients as victims: ping, and Python sockets (a real TCP/UDP stack user, not our code).

use std::process::Command;

/// What a ping run saw.
#[derive(Debug, Clone, Copy)]
pub struct Ping {
    pub transmitted: u64,
    pub received: u64,
    /// Round-trip times in ms (min, avg, max, mdev), when anything came back.
    pub rtt: Option<[f64; 4]>,
}

impl Ping {
    pub fn lost(&self) -> u64 {
        self.transmitted - self.received
    }
}

/// `ping -q -c COUNT -i INTERVAL -W 1 DST` through `cmd` (a command prepared to run inside a
/// namespace/cgroup with program "ping").
pub fn ping(mut cmd: Command, dst: &str, count: u32, interval: &str) -> Ping {
    let out = cmd
        .args([
            "-q",
            "-n",
            "-c",
            &count.to_string(),
            "-i",
            interval,
            "-W",
            "1",
            dst,
        ])
        .output()
        .expect("run ping (install iputils-ping)");
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|l| l.contains("packets transmitted"))
        .unwrap_or_else(|| {
            panic!(
                "no ping summary: {text} {}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
    let num = |key: &str| -> u64 {
        let before = line.split(key).next().expect("field");
        before
            .split(|c: char| !c.is_ascii_digit())
            .rfind(|s| !s.is_empty())
            .expect("number")
            .parse()
            .expect("int")
    };
    // "rtt min/avg/max/mdev = 0.031/0.045/0.090/0.012 ms"
    let rtt = text
        .lines()
        .find_map(|l| l.split_once(" = "))
        .and_then(|(k, v)| {
            let nums: Vec<f64> = v
                // "... ms" or "... ms, pipe 2" when replies overlap.
                .split(" ms")
                .next()
                .unwrap_or_default()
                .split('/')
                .filter_map(|x| x.parse().ok())
                .collect();
            (k.contains("min/avg") && nums.len() == 4).then(|| [nums[0], nums[1], nums[2], nums[3]])
        });
    Ping {
        transmitted: num(" packets transmitted"),
        received: num(" received"),
        rtt,
    }
}

/// Round-trip times (ms) of the replies, in sequence order: `ping -c COUNT -i INTERVAL DST`
/// through `cmd` (program "ping").
pub fn ping_rtts(mut cmd: Command, dst: &str, count: u32, interval: &str) -> Vec<f64> {
    let out = cmd
        .args([
            "-n",
            "-c",
            &count.to_string(),
            "-i",
            interval,
            "-W",
            "2",
            dst,
        ])
        .output()
        .expect("run ping");
    let mut seen: Vec<(u64, f64)> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            // "64 bytes from 10.77.0.2: icmp_seq=3 ttl=64 time=101 ms"
            let seq = l
                .split("icmp_seq=")
                .nth(1)?
                .split(' ')
                .next()?
                .parse()
                .ok()?;
            let t = l.split("time=").nth(1)?.split(' ').next()?.parse().ok()?;
            Some((seq, t))
        })
        .collect();
    seen.sort_by_key(|&(seq, _)| seq);
    seen.into_iter().map(|(_, t)| t).collect()
}

/// Python: connect to (host, port) over TCP, IPv4 or IPv6; prints the errno (0 = connected).
const CONNECT: &str = r#"
import socket, sys
host, port, proto = sys.argv[1], int(sys.argv[2]), sys.argv[3]
fam = socket.AF_INET6 if ":" in host else socket.AF_INET
s = socket.socket(fam, socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM)
s.settimeout(2)
try:
    s.connect((host, port)); print(0)
except OSError as e:
    print(e.errno if e.errno is not None else -1)
"#;

/// Returns the errno connect() gave (0 on success). `cmd` runs "python3".
pub fn connect(mut cmd: Command, host: &str, port: u16, proto: &str) -> i32 {
    let out = cmd
        .args(["-c", CONNECT, host, &port.to_string(), proto])
        .output()
        .expect("run python3");
    let text = String::from_utf8_lossy(&out.stdout);
    text.trim().parse().unwrap_or_else(|_| {
        panic!(
            "connect client said {text:?} {}",
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// Python TCP listeners on the given ports; serve until killed.
pub const LISTEN: &str = r#"
import socket, sys, select
socks = []
for a in sys.argv[1:]:
    host, port = a.rsplit(":", 1)
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(fam); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((host.strip("[]"), int(port))); s.listen(64); socks.append(s)
print("ready", flush=True)
while True:
    r, _, _ = select.select(socks, [], [])
    for s in r:
        c, _ = s.accept(); c.close()
"#;

/// Receives datagrams `d` on HOST:PORT and prints MEASURE of each, space-separated, once the
/// test says the sender is done (a line on stdin) and 1 s has passed without a datagram: how
/// long the sender takes to start (seconds in an emulated guest under load) does not count.
const UDP_RECEIVE: &str = r#"
import select, socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((sys.argv[1], int(sys.argv[2])))
print("ready", flush=True)
got, end = [], None
while end is None or time.monotonic() < end:
    watch = [s] if end is not None else [s, sys.stdin]
    wait = None if end is None else end - time.monotonic()
    r, _, _ = select.select(watch, [], [], max(wait, 0) if wait is not None else None)
    if s in r:
        d = s.recv(128)
        got.append(MEASURE)
        if end is not None:
            end = time.monotonic() + 1.0
    elif sys.stdin in r:
        sys.stdin.readline()
        end = time.monotonic() + 1.0
print(" ".join(got), flush=True)
"#;

/// Sends argv[3] datagrams `i` of PAYLOAD to HOST:PORT from source port argv[4] (0: any), 1 ms
/// apart.
const UDP_SEND: &str = r#"
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("", int(sys.argv[4])))
for i in range(int(sys.argv[3])):
    s.sendto(PAYLOAD, (sys.argv[1], int(sys.argv[2]))); time.sleep(0.001)
"#;

/// A UDP receiver (python3 as `cmd` prepares it: a namespace, a cgroup) on HOST:PORT.
pub struct UdpReceiver {
    child: std::process::Child,
    out: std::io::BufReader<std::process::ChildStdout>,
}

impl UdpReceiver {
    /// Starts it and waits until it listens; `measure` is a Python expression of `d`.
    pub fn start(mut cmd: Command, (host, port): (&str, u16), measure: &str) -> UdpReceiver {
        use std::io::BufRead;
        let mut child = cmd
            .args([
                "-c",
                &UDP_RECEIVE.replace("MEASURE", measure),
                host,
                &port.to_string(),
            ])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("receiver");
        let mut out = std::io::BufReader::new(child.stdout.take().expect("stdout"));
        let mut line = String::new();
        out.read_line(&mut line).expect("ready");
        assert_eq!(line.trim(), "ready", "receiver did not start");
        UdpReceiver { child, out }
    }

    /// Tells it the sender is done; what it measured of each datagram, in arrival order.
    pub fn finish(mut self) -> Vec<u32> {
        use std::io::{BufRead, Write};
        let mut stdin = self.child.stdin.take().expect("stdin");
        writeln!(stdin, "done").expect("tell the receiver");
        let mut line = String::new();
        self.out.read_line(&mut line).expect("received");
        self.child.wait().expect("receiver exit");
        line.split_whitespace()
            .map(|x| x.parse().expect("number"))
            .collect()
    }
}

/// Sends `n` datagrams of `payload` (a Python bytes expression of `i`) from `sender` (python3,
/// prepared) to HOST:PORT from source port `sport` (0: any); waits for it to finish.
pub fn udp_send(mut sender: Command, (host, port): (&str, u16), n: u32, sport: u16, payload: &str) {
    let tx = UDP_SEND.replace("PAYLOAD", payload);
    let sent = sender
        .args([
            "-c",
            &tx,
            host,
            &port.to_string(),
            &n.to_string(),
            &sport.to_string(),
        ])
        .status()
        .expect("sender");
    assert!(sent.success(), "the sender failed");
}

/// Sends datagrams 0..n (1 ms apart) from `sender` (a prepared "python3" command) to a receiver
/// on 10.77.0.2:9000 in the netns `server_ns`; returns the sequence numbers received, in
/// arrival order.
pub fn udp_exchange(server_ns: &str, sender: Command, n: u32) -> Vec<u32> {
    exchange(server_ns, sender, n, "d.decode()", "str(i).encode()")
}

/// Like `udp_exchange`, with 64-byte payloads of 0x55: returns, for each datagram that
/// arrived, the number of bits that differ from what was sent.
pub fn udp_bit_errors(server_ns: &str, sender: Command, n: u32) -> Vec<u32> {
    let bits = r#"str(sum(bin(b ^ 0x55).count("1") for b in d) + 8 * abs(len(d) - 64))"#;
    exchange(server_ns, sender, n, bits, r#"b"\x55" * 64"#)
}

/// The receiver in `server_ns` on 10.77.0.2:9000, then `n` datagrams of `payload` from
/// `sender`; the receiver's `measure` of each.
fn exchange(server_ns: &str, sender: Command, n: u32, measure: &str, payload: &str) -> Vec<u32> {
    let mut rx = Command::new("nsenter");
    rx.arg(format!("--net=/run/netns/{server_ns}"))
        .arg("python3");
    let to = ("10.77.0.2", 9000);
    let r = UdpReceiver::start(rx, to, measure);
    udp_send(sender, to, n, 0, payload);
    r.finish()
}

/// A counter from /proc/net/snmp in network namespace `ns`, e.g. ("Udp", "InCsumErrors").
pub fn snmp(ns: &str, proto: &str, field: &str) -> u64 {
    let out = Command::new("nsenter")
        .arg(format!("--net=/run/netns/{ns}"))
        .args(["cat", "/proc/net/snmp"])
        .output()
        .expect("cat /proc/net/snmp");
    let text = String::from_utf8_lossy(&out.stdout);
    let rows: Vec<Vec<&str>> = text
        .lines()
        .filter(|l| l.starts_with(&format!("{proto}:")))
        .map(|l| l.split_whitespace().collect())
        .collect();
    let (names, values) = (&rows[0], &rows[1]);
    let i = names
        .iter()
        .position(|n| *n == field)
        .unwrap_or_else(|| panic!("no {proto} {field} in /proc/net/snmp"));
    values[i].parse().expect("counter")
}
