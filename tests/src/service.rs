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
