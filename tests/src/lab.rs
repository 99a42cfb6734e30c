//! A test's own lab: chaos's sandbox (two netns + veth + cgroup, unique names), servers in it,
//! and the final check that the test left nothing behind.

use crate::{Running, sh};
use chaos::sandbox::Sandbox;
use std::{
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
};

pub use chaos::sandbox::{CLIENT_V4, CLIENT_V6, SERVER_V4, SERVER_V6};

pub struct Lab {
    /// Declared first so it drops first: cleans the lab's chaos state even after a failed
    /// assertion, while the namespaces still exist.
    _cleanup: StateGuard,
    pub sb: Sandbox,
    /// This lab's own chaos state and pin directories (CHAOS_STATE_DIR, CHAOS_PIN_DIR), so
    /// `chaos cleanup` in one test never touches another test's faults.
    pub state_dir: PathBuf,
    pub pin_dir: PathBuf,
}

/// A server process; killed on drop.
pub struct Server(Child);

impl Server {
    /// Starts `cmd` and waits for it to print "ready".
    pub fn start(mut cmd: Command, what: &str) -> Self {
        let mut child = cmd
            .stdout(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("start {what}: {e}"));
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("server output");
        assert_eq!(line.trim(), "ready", "{what} did not start");
        Self(child)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Lab {
    pub fn new(tag: &str) -> Lab {
        crate::require_root();
        let sb =
            Sandbox::create(tag).unwrap_or_else(|e| panic!("sandbox: {}", chaos::error::chain(&e)));
        let name = sb
            .cgroup
            .file_name()
            .expect("cgroup name")
            .to_string_lossy()
            .into_owned();
        let state_dir = PathBuf::from("/run/chaos-test").join(&name);
        let pin_dir = PathBuf::from("/sys/fs/bpf").join(&name);
        let _cleanup = StateGuard {
            state_dir: state_dir.clone(),
            pin_dir: pin_dir.clone(),
        };
        Lab {
            _cleanup,
            sb,
            state_dir,
            pin_dir,
        }
    }

    /// A `chaos` command using this lab's state and pin directories.
    pub fn chaos_cmd(&self) -> Command {
        self.with_state(Command::new(crate::chaos_bin()))
    }

    /// `cmd` (one that runs chaos) with this lab's state and pin directories: no test ever
    /// touches the machine's own (/run/chaos).
    pub fn with_state(&self, mut cmd: Command) -> Command {
        cmd.env("CHAOS_STATE_DIR", &self.state_dir)
            .env("CHAOS_PIN_DIR", &self.pin_dir);
        cmd
    }

    /// Runs `chaos ARGS` to completion with the lab's state: (exit code, stdout, stderr).
    pub fn run(&self, args: &[&str]) -> (i32, String, String) {
        crate::chaos_via(self.chaos_cmd(), args)
    }

    /// Starts `chaos ARGS --json` with the lab's state and waits for its "attached" line.
    pub fn start(&self, args: &[&str]) -> Running {
        Running::start_via(self.chaos_cmd(), args)
    }

    pub fn cgroup(&self) -> String {
        self.sb.cgroup.to_string_lossy().into_owned()
    }

    /// `program` in the server namespace (outside any lab cgroup).
    pub fn in_server(&self, program: &str) -> Command {
        let mut cmd = Command::new("nsenter");
        cmd.arg(format!("--net=/run/netns/{}", self.sb.server_ns))
            .arg(program);
        cmd
    }

    /// TCP listeners in the server namespace, e.g. ["10.77.0.2:7001", "[fd77::2]:7001"].
    pub fn tcp_server(&self, addrs: &[&str]) -> Server {
        let mut cmd = self.in_server("python3");
        cmd.args(["-c", crate::clients::LISTEN]).args(addrs);
        Server::start(cmd, "python3 TCP server")
    }

    /// The qdiscs of the server's veth end, as `tc` lists them.
    pub fn server_qdiscs(&self) -> String {
        let (ns, dev) = (&self.sb.server_ns, &self.sb.server_if);
        sh(Command::new("tc").args(["-n", ns, "qdisc", "show", "dev", dev]))
    }

    /// The interfaces of the server namespace, as `ip` lists them.
    pub fn server_links(&self) -> String {
        sh(Command::new("ip").args(["-n", &self.sb.server_ns, "-o", "link", "show"]))
    }

    /// Text describing every BPF/tc attachment on the lab's interfaces, as iproute2 and bpftool
    /// see them: must show no chaos program and no clsact when no fault runs.
    pub fn attachments(&self) -> String {
        let mut all = String::new();
        for (ns, dev) in [
            (&self.sb.server_ns, &self.sb.server_if),
            (&self.sb.client_ns, &self.sb.client_if),
        ] {
            all += &tcx_programs(ns, dev);
            let net = format!("--net=/run/netns/{ns}");
            all += &sh(Command::new("nsenter").args([&net, "bpftool", "net", "show", "dev", dev]));
            all += &sh(Command::new("tc").args(["-n", ns, "qdisc", "show", "dev", dev]));
            for dir in ["ingress", "egress"] {
                all += &sh(Command::new("tc").args(["-n", ns, "filter", "show", "dev", dev, dir]));
            }
        }
        all += &sh(Command::new("bpftool").args(["cgroup", "show", &self.cgroup()]));
        all
    }

    pub fn assert_nothing_attached(&self) {
        let a = self.attachments();
        assert!(
            !a.contains("chaos") && !a.contains("clsact"),
            "left attached:\n{a}"
        );
    }

    /// Checks nothing is attached and no chaos state is left, removes the lab, and checks it
    /// is gone.
    pub fn finish(self) {
        self.assert_nothing_attached();
        for dir in [&self.state_dir, &self.pin_dir] {
            let left: Vec<_> = std::fs::read_dir(dir)
                .map(|d| d.flatten().map(|e| e.path()).collect())
                .unwrap_or_default();
            assert!(
                left.is_empty(),
                "chaos state left in {}: {left:?}",
                dir.display()
            );
        }
        let Lab { _cleanup, sb, .. } = self;
        drop(_cleanup);
        let (s, c, cg) = (
            sb.server_ns.clone(),
            sb.client_ns.clone(),
            sb.cgroup.clone(),
        );
        drop(sb);
        for ns in [s, c] {
            assert!(
                !Path::new("/run/netns").join(&ns).exists(),
                "netns {ns} left behind"
            );
        }
        assert!(!cg.exists(), "cgroup {} left behind", cg.display());
    }

    /// `chaos net ACTION` on the server's veth end (in its netns), then `extra` arguments.
    pub fn at_server<'a>(&'a self, action: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
        let mut args = vec![
            "net",
            action,
            "--iface",
            &self.sb.server_if,
            "--netns",
            &self.sb.server_ns,
        ];
        args.extend_from_slice(extra);
        args
    }

    /// `chaos net drop` on the server's veth end, running with the lab's state dirs.
    pub fn drop_at_server(&self, extra: &[&str]) -> Running {
        self.start(&self.at_server("drop", extra))
    }

    /// `chaos syscall connect` scoped to the lab cgroup with `extra` arguments.
    pub fn fail_connect(&self, extra: &[&str]) -> Running {
        let cgroup = self.cgroup();
        let mut args = vec!["syscall", "connect", "--cgroup", &cgroup];
        args.extend_from_slice(extra);
        self.start(&args)
    }

    /// `chaos syscall ARGS --cgroup <lab cgroup> --duration 120s`, for tests that end it
    /// themselves (interrupt) well before that.
    pub fn syscall(&self, args: &[&str]) -> Running {
        let cgroup = self.cgroup();
        let mut all = vec!["syscall"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["--cgroup", &cgroup, "--duration", "120s"]);
        self.start(&all)
    }

    /// A command running in the client netns inside the lab cgroup.
    pub fn inside(&self, program: &str) -> Command {
        self.sb.in_cgroup(program)
    }

    /// A command running in the client netns outside the cgroup (the control).
    pub fn outside(&self, program: &str) -> Command {
        self.sb.outside_cgroup(program)
    }
}

/// Runs `chaos cleanup` on a lab's own state when the lab goes away, so that a failed test does
/// not leave pinned faults behind; then removes the (empty) directories.
struct StateGuard {
    state_dir: PathBuf,
    pin_dir: PathBuf,
}

impl Drop for StateGuard {
    fn drop(&mut self) {
        let has = |d: &Path| std::fs::read_dir(d).is_ok_and(|mut e| e.next().is_some());
        if has(&self.state_dir) || has(&self.pin_dir) {
            let _ = Command::new(crate::chaos_bin())
                .arg("cleanup")
                .env("CHAOS_STATE_DIR", &self.state_dir)
                .env("CHAOS_PIN_DIR", &self.pin_dir)
                .status();
        }
        let _ = std::fs::remove_dir(&self.state_dir);
        let _ = std::fs::remove_dir(&self.pin_dir);
    }
}

/// Programs attached through TCX to `dev` in `ns`, asked of the kernel (BPF_PROG_QUERY).
fn tcx_programs(ns: &str, dev: &str) -> String {
    use aya::programs::{SchedClassifier, TcAttachType};
    let netns = chaos::netns::Netns::resolve(ns).expect("lab netns");
    let mut out = String::new();
    for (ty, name) in [
        (TcAttachType::Ingress, "ingress"),
        (TcAttachType::Egress, "egress"),
    ] {
        // Kernels before 6.6 have no TCX: nothing can be attached that way there.
        let Ok((_, progs)) = netns
            .enter(|| SchedClassifier::query_tcx(dev, ty))
            .expect("enter")
        else {
            continue;
        };
        for p in progs {
            let prog = p.name_as_str().unwrap_or("?").to_string();
            out += &format!("tcx {dev} {name}: {prog} id {}\n", p.id());
        }
    }
    out
}
