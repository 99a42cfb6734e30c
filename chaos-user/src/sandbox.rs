//! A throwaway lab for the demo and the integration tests: two network namespaces joined by a
//! veth pair, and a cgroup v2. Names are unique per process and call; Drop removes it all.

use crate::{
    cgroup,
    error::{Error, Result},
    netns::Netns,
};
use std::{
    ffi::CString,
    fs,
    net::{Ipv4Addr, Ipv6Addr},
    os::{fd::AsRawFd, unix::process::CommandExt},
    path::PathBuf,
    process::Command,
    sync::atomic::{AtomicU32, Ordering},
};

/// Addresses are the same in every sandbox: each pair of namespaces is its own network.
pub const SERVER_V4: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 2);
pub const CLIENT_V4: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 1);
pub const SERVER_V6: Ipv6Addr = Ipv6Addr::new(0xfd77, 0, 0, 0, 0, 0, 0, 2);
pub const CLIENT_V6: Ipv6Addr = Ipv6Addr::new(0xfd77, 0, 0, 0, 0, 0, 0, 1);

pub struct Sandbox {
    /// Netns names under /run/netns.
    pub server_ns: String,
    pub client_ns: String,
    /// The veth ends: server_if lives in server_ns, client_if in client_ns.
    pub server_if: String,
    pub client_if: String,
    /// A cgroup v2 directory; processes started with `in_cgroup` join it.
    pub cgroup: PathBuf,
    /// Set once the client namespace exists; `create` returns only after that.
    client: Option<Netns>,
}

static SEQ: AtomicU32 = AtomicU32::new(0);

fn ip(args: &[&str]) -> Result<()> {
    let out = crate::child::dies_with_parent(&mut Command::new("ip"))
        .args(args)
        .output()
        .map_err(|e| Error::io("running ip (install iproute2)", e))?;
    if !out.status.success() {
        return Err(Error::tool(
            format!("ip {}", args.join(" ")),
            String::from_utf8_lossy(&out.stderr).trim(),
        ));
    }
    Ok(())
}

impl Sandbox {
    /// `tag` (a few letters) makes the names recognisable: chaos-TAG-PID-N-srv, ...
    pub fn create(tag: &str) -> Result<Self> {
        let n = SEQ.fetch_add(1, Ordering::Relaxed);
        let id = format!("{}{n}", std::process::id());
        let name = format!("chaos-{tag}-{id}");
        let mount = cgroup::v2_mount()?;
        // Drop cleans up whatever part was created if a later step fails.
        let mut sb = Sandbox {
            server_ns: format!("{name}-srv"),
            client_ns: format!("{name}-cli"),
            server_if: format!("cx{id}s"),
            client_if: format!("cx{id}c"),
            cgroup: mount.join(&name),
            client: None,
        };
        fs::create_dir(&sb.cgroup)
            .map_err(|e| Error::io(format!("creating {}", sb.cgroup.display()), e))?;
        let (s, c) = (sb.server_ns.clone(), sb.client_ns.clone());
        ip(&["netns", "add", &s])?;
        ip(&["netns", "add", &c])?;
        ip(&[
            "link",
            "add",
            &sb.client_if,
            "netns",
            &c,
            "type",
            "veth",
            "peer",
            "name",
            &sb.server_if,
            "netns",
            &s,
        ])?;
        for (ns, dev, v4, v6) in [
            (&s, &sb.server_if, SERVER_V4, SERVER_V6),
            (&c, &sb.client_if, CLIENT_V4, CLIENT_V6),
        ] {
            ip(&["-n", ns, "addr", "add", &format!("{v4}/24"), "dev", dev])?;
            // nodad: usable at once instead of after duplicate address detection.
            ip(&[
                "-n",
                ns,
                "addr",
                "add",
                &format!("{v6}/64"),
                "dev",
                dev,
                "nodad",
            ])?;
            ip(&["-n", ns, "link", "set", dev, "up"])?;
            ip(&["-n", ns, "link", "set", "lo", "up"])?;
        }
        sb.client = Some(Netns::resolve(&c)?);
        Ok(sb)
    }

    pub fn server_netns(&self) -> Result<Netns> {
        Netns::resolve(&self.server_ns)
    }

    /// A command that runs in the client namespace, inside the sandbox cgroup.
    pub fn in_cgroup(&self, program: &str) -> Command {
        self.client_command(program, Some(self.cgroup.join("cgroup.procs")))
    }

    /// A command that runs in the client namespace but outside the cgroup: the control.
    pub fn outside_cgroup(&self, program: &str) -> Command {
        self.client_command(program, None)
    }

    fn client_command(&self, program: &str, procs: Option<PathBuf>) -> Command {
        let mut cmd = Command::new(program);
        crate::child::dies_with_parent(&mut cmd);
        let ns_fd = self
            .client
            .as_ref()
            .expect("created with the sandbox")
            .as_raw_fd();
        let procs = procs.map(|p| {
            CString::new(p.into_os_string().into_encoded_bytes()).expect("path without NUL")
        });
        // SAFETY: runs between fork and exec; only async-signal-safe syscalls on data prepared
        // before the fork (a namespace fd and a C string).
        unsafe {
            cmd.pre_exec(move || {
                if libc::setns(ns_fd, libc::CLONE_NEWNET) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                if let Some(procs) = &procs {
                    // Writing "0" to cgroup.procs moves the writing process.
                    let fd = libc::open(procs.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
                    if fd < 0 || libc::write(fd, b"0".as_ptr().cast(), 1) != 1 {
                        return Err(std::io::Error::last_os_error());
                    }
                    libc::close(fd);
                }
                Ok(())
            });
        }
        cmd
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        // Deleting a netns destroys its veth end, and with it the peer.
        for ns in [&self.server_ns, &self.client_ns] {
            if std::path::Path::new("/run/netns").join(ns).exists()
                && let Err(e) = ip(&["netns", "del", ns])
            {
                tracing::warn!("removing netns {ns}: {}", crate::error::chain(&e));
            }
        }
        if self.cgroup.exists() {
            // Processes may take a moment to leave after they exit.
            for _ in 0..50 {
                match fs::remove_dir(&self.cgroup) {
                    Ok(()) => return,
                    Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
                        std::thread::sleep(std::time::Duration::from_millis(20))
                    }
                    Err(e) => {
                        tracing::warn!("removing {}: {e}", self.cgroup.display());
                        return;
                    }
                }
            }
            tracing::warn!("removing {}: still busy", self.cgroup.display());
        }
    }
}
