//! A test's own lab: chaos's sandbox (two netns + veth + cgroup, unique names), servers in it,
//! and the final check that the test left nothing behind.

use crate::{Running, sh};
use chaos::sandbox::Sandbox;
use std::{
    io::{BufRead, BufReader},
    path::Path,
    process::{Child, Command, Stdio},
};

pub use chaos::sandbox::{CLIENT_V4, CLIENT_V6, SERVER_V4, SERVER_V6};

pub struct Lab {
    pub sb: Sandbox,
}

/// A server process; killed on drop.
pub struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Lab {
    pub fn new(tag: &str) -> Lab {
        crate::require_root();
        Lab {
            sb: Sandbox::create(tag)
                .unwrap_or_else(|e| panic!("sandbox: {}", chaos::error::chain(&e))),
        }
    }

    pub fn cgroup(&self) -> String {
        self.sb.cgroup.to_string_lossy().into_owned()
    }

    /// TCP listeners in the server namespace, e.g. ["10.77.0.2:7001", "[fd77::2]:7001"].
    pub fn tcp_server(&self, addrs: &[&str]) -> Server {
        let mut child = Command::new("nsenter")
            .arg(format!("--net=/run/netns/{}", self.sb.server_ns))
            .args(["python3", "-c", crate::clients::LISTEN])
            .args(addrs)
            .stdout(Stdio::piped())
            .spawn()
            .expect("start python3 server");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("server output");
        assert_eq!(line.trim(), "ready", "server did not start");
        Server(child)
    }

    /// Text describing every BPF/tc attachment on the lab's interfaces, as iproute2 and bpftool
    /// see them: must show no chaos program and no clsact when no fault runs.
    pub fn attachments(&self) -> String {
        let mut all = String::new();
        for (ns, dev) in [
            (&self.sb.server_ns, &self.sb.server_if),
            (&self.sb.client_ns, &self.sb.client_if),
        ] {
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

    /// Checks nothing is attached, removes the lab, and checks it is gone.
    pub fn finish(self) {
        self.assert_nothing_attached();
        let (s, c, cg) = (
            self.sb.server_ns.clone(),
            self.sb.client_ns.clone(),
            self.sb.cgroup.clone(),
        );
        drop(self.sb);
        for ns in [s, c] {
            assert!(
                !Path::new("/run/netns").join(&ns).exists(),
                "netns {ns} left behind"
            );
        }
        assert!(!cg.exists(), "cgroup {} left behind", cg.display());
    }

    /// `chaos net drop` on the server's veth end (in its netns) with `extra` arguments.
    pub fn drop_at_server(&self, extra: &[&str]) -> Running {
        let mut args = vec![
            "net",
            "drop",
            "--iface",
            &self.sb.server_if,
            "--netns",
            &self.sb.server_ns,
        ];
        args.extend_from_slice(extra);
        Running::start(&args)
    }

    /// `chaos syscall connect` scoped to the lab cgroup with `extra` arguments.
    pub fn fail_connect(&self, extra: &[&str]) -> Running {
        let cgroup = self.cgroup();
        let mut args = vec!["syscall", "connect", "--cgroup", &cgroup];
        args.extend_from_slice(extra);
        Running::start(&args)
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
