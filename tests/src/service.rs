//! The system under test for experiments: a real HTTP service (Python's http.server) with one
//! dependency it connects to on every request. `/` always answers 200 and says whether the
//! dependency was reachable (graceful degradation); `/dep` answers 502 when it is not.

use crate::lab::{Lab, Server};

const SERVICE: &str = r#"
import http.server, socket, sys
host, port = sys.argv[1].rsplit(":", 1)
dep = (sys.argv[2], int(sys.argv[3]))
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        try:
            socket.create_connection(dep, timeout=2).close()
            up = True
        except OSError:
            up = False
        code = 200 if (self.path == "/" or up) else 502
        body = b"dependency up\n" if up else b"dependency down\n"
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
srv = http.server.ThreadingHTTPServer((host, int(port)), H)
print("ready", flush=True)
srv.serve_forever()
"#;

/// GET URL every INTERVAL seconds until killed; one line per answer: "SECONDS STATUS" (0 for no
/// answer at all).
const POLL: &str = r#"
import sys, time, urllib.request, urllib.error
url, every = sys.argv[1], float(sys.argv[2])
t0 = time.monotonic()
while True:
    t = time.monotonic() - t0
    try:
        code = urllib.request.urlopen(url, timeout=3).status
    except urllib.error.HTTPError as e:
        code = e.code
    except OSError:
        code = 0
    print(f"{t:.3f} {code}", flush=True)
    time.sleep(every)
"#;

/// A client of the service, outside chaos: what the service's users saw, for evidence that does
/// not come from chaos's own counters.
pub struct Poller(std::process::Child);

impl Poller {
    /// Stops polling; every answer as (seconds since the start, HTTP status or 0).
    pub fn stop(mut self) -> Vec<(f64, u16)> {
        let _ = self.0.kill();
        let out = self.0.wait_with_output().expect("poller output");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| {
                let (t, c) = l.split_once(' ')?;
                Some((t.parse().ok()?, c.parse().ok()?))
            })
            .collect()
    }
}

/// Where the service listens: the client namespace's address.
pub const SERVICE_ADDR: &str = "10.77.0.1:8080";
/// Its dependency: a TCP listener in the server namespace.
pub const DEP_HOST: &str = "10.77.0.2";
pub const DEP_PORT: u16 = 7001;

impl Lab {
    /// The dependency in the server namespace and the HTTP service in the client namespace,
    /// inside the lab cgroup (the experiment's target).
    pub fn http_service(&self) -> (Server, Server) {
        let dep = self.tcp_server(&[&format!("{DEP_HOST}:{DEP_PORT}")]);
        let mut cmd = self.inside("python3");
        cmd.args(["-c", SERVICE, SERVICE_ADDR, DEP_HOST, &DEP_PORT.to_string()]);
        (dep, Server::start(cmd, "the HTTP service"))
    }

    /// Polls the service's `/dep` (which answers 502 while the dependency is unreachable)
    /// every 100 ms from the server namespace, until stopped.
    pub fn poll_dep(&self) -> Poller {
        let child = self
            .in_server("python3")
            .args(["-c", POLL, &format!("http://{SERVICE_ADDR}/dep"), "0.1"])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("start the HTTP poller");
        Poller(child)
    }

    /// `chaos run ARGS` from the server namespace (where the service is reachable over the
    /// veth), outside the lab cgroup, with the lab's state directories.
    pub fn chaos_run(&self, args: &[&str]) -> (i32, String, String) {
        let mut cmd = std::process::Command::new("nsenter");
        cmd.arg(format!("--net=/run/netns/{}", self.sb.server_ns))
            .arg(crate::chaos_bin())
            .env("CHAOS_STATE_DIR", &self.state_dir)
            .env("CHAOS_PIN_DIR", &self.pin_dir);
        crate::chaos_via(cmd, args)
    }
}
