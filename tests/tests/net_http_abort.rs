//! `chaos net http-abort`: a real HTTP server (Python's http.server) answers 200, and the lab
//! cgroup's client (http.client on keep-alive connections) receives the fault's status for its
//! share of the responses, bodies intact; another port, and a client outside the cgroup, get
//! only 200s.

use chaos_tests::{
    lab::{Lab, Server},
    stats::binomial_999,
};

/// HTTP/1.1 on ports from argv, 200 with a fixed body to every GET; prints "ready".
const SERVER: &str = r#"
import http.server, sys, threading
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body in one write (flushed after each request): no Nagle wait between them.
    wbufsize = 65536
    def do_GET(self):
        body = b"hello from a healthy server\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
servers = [http.server.ThreadingHTTPServer(("0.0.0.0", int(p)), H) for p in sys.argv[1:]]
for s in servers[1:]:
    threading.Thread(target=s.serve_forever, daemon=True).start()
print("ready", flush=True)
servers[0].serve_forever()
"#;

/// N GETs to HOST:PORT over one keep-alive connection: prints the count of each status and of
/// bodies that differ from the server's.
const CLIENT: &str = r#"
import http.client, sys, collections
host, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
c = http.client.HTTPConnection(host, port, timeout=10)
seen, bad = collections.Counter(), 0
for _ in range(n):
    c.request("GET", "/")
    r = c.getresponse()
    bad += r.read() != b"hello from a healthy server\n"
    seen[r.status] += 1
print(seen[200], seen[503], sum(seen.values()) - seen[200] - seen[503], bad)
"#;

/// (200s, 503s, other statuses, bad bodies) of `n` requests made by `cmd`.
/// (A status other than 200 and 503 counts as "other".)
fn get(mut cmd: std::process::Command, port: u16, n: u32) -> [u64; 4] {
    let out = cmd
        .args(["-c", CLIENT, "10.77.0.2", &port.to_string(), &n.to_string()])
        .output()
        .expect("python3 client");
    assert!(
        out.status.success(),
        "client: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let v: Vec<u64> = text
        .split_whitespace()
        .map(|x| x.parse().expect("count"))
        .collect();
    [v[0], v[1], v[2], v[3]]
}

/// 30 % of the cgroup's responses from port 8080 become 503 (inside the binomial 99.9 %
/// interval, and exactly the kernel's count), with every body intact; port 8081 and a client
/// outside the cgroup see only 200s.
#[test]
fn http_abort_answers_503_to_a_share_of_the_cgroups_responses() {
    let lab = Lab::new("http");
    let mut cmd = lab.in_server("python3");
    cmd.args(["-c", SERVER, "8080", "8081"]);
    let _srv = Server::start(cmd, "python3 HTTP server");
    let cg = lab.cgroup();
    let fault = lab.start(&[
        "net",
        "http-abort",
        "--iface",
        &lab.sb.client_if,
        "--netns",
        &lab.sb.client_ns,
        "--status",
        "503",
        "--percent",
        "30",
        "--port",
        "8080",
        "--cgroup",
        &cg,
        "--duration",
        "120s",
    ]);
    let n = 400;
    let [ok, aborted, other, bad] = get(lab.inside("python3"), 8080, n);
    let (lo, hi) = binomial_999(u64::from(n), 0.3);
    assert!(
        (lo..=hi).contains(&aborted),
        "{aborted} of {n} aborted, not in {lo}..={hi}"
    );
    assert_eq!((ok + aborted, other, bad), (u64::from(n), 0, 0));
    assert_eq!(
        get(lab.inside("python3"), 8081, 100),
        [100, 0, 0, 0],
        "another port"
    );
    assert_eq!(
        get(lab.outside("python3"), 8080, 100),
        [100, 0, 0, 0],
        "a client outside the cgroup"
    );
    let ids = fault.program_ids.clone();
    let s = fault.interrupt();
    assert_eq!(s["injected"].as_u64(), Some(aborted), "{s}");
    chaos_tests::assert_programs_gone(&ids);
    lab.finish();
}

/// --direction egress on the server's interface: every response leaving port 8080 becomes a
/// 500 (counted as "other" by the client), bodies intact; port 8081 is spared.
#[test]
fn http_abort_at_the_server_side_rewrites_leaving_responses() {
    let lab = Lab::new("httpeg");
    let mut cmd = lab.in_server("python3");
    cmd.args(["-c", SERVER, "8080", "8081"]);
    let _srv = Server::start(cmd, "python3 HTTP server");
    let args = lab.at_server(
        "http-abort",
        &[
            "--direction",
            "egress",
            "--status",
            "500",
            "--port",
            "8080",
            "--duration",
            "120s",
        ],
    );
    let fault = lab.start(&args);
    assert_eq!(get(lab.outside("python3"), 8080, 50), [0, 0, 50, 0]);
    assert_eq!(get(lab.outside("python3"), 8081, 50), [50, 0, 0, 0]);
    let s = fault.interrupt();
    assert_eq!(s["injected"].as_u64(), Some(50), "{s}");
    lab.finish();
}
