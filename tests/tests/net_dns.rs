//! `chaos net dns`: with a real resolver (dnsmasq, started here in the lab's server namespace),
//! the lab cgroup's lookups of matching names get the fault's answer through glibc (getent,
//! Python's getaddrinfo), over UDP and TCP, IPv4 and IPv6, and never reach the resolver;
//! other names resolve, and a client outside the cgroup resolves everything.

use chaos_tests::{TempPath, lab::Lab};
use std::process::{Child, Command, Stdio};

/// dnsmasq answering *.shop.test and *.other.test from its own records, logging every query.
struct Resolver {
    child: Child,
    log: TempPath,
}

impl Drop for Resolver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Resolver {
    fn start(lab: &Lab) -> Resolver {
        let log = TempPath::new(&format!("dnsmasq-{}", lab.sb.server_ns));
        let child = lab
            .in_server("dnsmasq")
            .args([
                "--keep-in-foreground",
                "--no-resolv",
                "--no-hosts",
                "--bind-interfaces",
                "--listen-address=10.77.0.2,fd77::2",
                "--address=/shop.test/10.1.2.3",
                "--address=/shop.test/fd01::3",
                "--address=/other.test/10.1.2.4",
                "--address=/other.test/fd01::4",
                "--log-queries",
                &format!("--log-facility={}", log.as_str()),
                "--pid-file=",
                // No user switch: the VM guests have no passwd entries to switch to.
                "--user=",
                "--group=",
            ])
            .stdout(Stdio::null())
            .spawn()
            .expect("dnsmasq (scripts/setup.sh installs dnsmasq-base)");
        let r = Resolver { child, log };
        // dnsmasq logs "started" once it listens (seconds in an emulated guest).
        for _ in 0..300 {
            if std::fs::read_to_string(&r.log.0).is_ok_and(|l| l.contains("started")) {
                assert_eq!(
                    lookup(|p| lab.outside(p), "ready.other.test", V4, false),
                    (0, "10.1.2.4 fd01::4".into())
                );
                return r;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        panic!(
            "dnsmasq did not start: {:?}",
            std::fs::read_to_string(&r.log.0)
        );
    }

    /// Queries for `name` the resolver logged.
    fn queries(&self, name: &str) -> usize {
        std::fs::read_to_string(&self.log.0)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains("query[") && l.contains(&format!(" {name} ")))
            .count()
    }
}

const V4: &str = "10.77.0.2";
const V6: &str = "fd77::2";

/// Resolves `name` with glibc's getaddrinfo (Python), through `server` only (over TCP with
/// `tcp`), in a private mount namespace whose /etc is a tmpfs holding only a resolv.conf
/// naming that server (also where the system has no resolv.conf, as in the VM guests);
/// `cmd(program)` places the process (in the cgroup or outside it). (exit status, output):
/// 0 and the addresses, or 2 and the getaddrinfo error's EAI_* name.
fn lookup(cmd: impl Fn(&str) -> Command, name: &str, server: &str, tcp: bool) -> (i32, String) {
    let conf = format!(
        "nameserver {server}\noptions attempts:1 timeout:{TIMEOUT_S}{}\n",
        if tcp { " use-vc" } else { "" }
    );
    let script = format!(
        "mount -t tmpfs chaos-dns-test /etc && printf '{conf}' > /etc/resolv.conf && \
         exec python3 -c \"$0\" \"$1\""
    );
    let out = cmd("unshare")
        .args(["-m", "sh", "-c", &script, PY, name])
        .output()
        .expect("unshare");
    let err = String::from_utf8_lossy(&out.stderr);
    let took: f64 = err
        .trim()
        .lines()
        .last()
        .and_then(|l| l.parse().ok())
        .unwrap_or_else(|| panic!("lookup of {name}: {err}"));
    assert!(
        took < f64::from(TIMEOUT_S) / 2.0,
        "lookup of {name} took {took} s: a query was lost, not answered"
    );
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).trim().to_string(),
    )
}

/// Prints the addresses, or the error's EAI_* name and exits 2; on stderr, how long the lookup
/// took (an answer comes at once; a lost query would take the resolv.conf timeout).
const PY: &str = "import socket,sys,time
t=time.monotonic()
try:
    print(' '.join(sorted({a[4][0] for a in socket.getaddrinfo(sys.argv[1], 80)})))
except socket.gaierror as e:
    print({socket.EAI_NONAME: 'EAI_NONAME', socket.EAI_AGAIN: 'EAI_AGAIN'}.get(e.errno, e)); sys.exit(2)
finally:
    print(time.monotonic()-t, file=sys.stderr)";

/// resolv.conf's timeout (s): far above how long an answer takes, even in an emulated guest.
const TIMEOUT_S: u32 = 10;

/// `chaos net dns` on the client's side of the lab, scoped to its cgroup.
fn dns_fault(lab: &Lab, extra: &[&str]) -> chaos_tests::Running {
    let cg = lab.cgroup();
    let mut args = vec![
        "net",
        "dns",
        "--iface",
        &lab.sb.client_if,
        "--netns",
        &lab.sb.client_ns,
        "--cgroup",
        &cg,
        "--duration",
        "60s",
    ];
    args.extend_from_slice(extra);
    lab.start(&args)
}

/// NXDOMAIN for *.shop.test over UDP: the cgroup's lookups of db.shop.test fail as "not
/// found" (getaddrinfo EAI_NONAME, getent exit 2) and the resolver never sees them; its
/// lookup of api.other.test resolves; a process outside the cgroup resolves db.shop.test.
#[test]
fn nxdomain_for_matching_names_inside_the_cgroup_only() {
    let lab = Lab::new("dnsnx");
    let resolver = Resolver::start(&lab);
    let fault = dns_fault(&lab, &["--rcode", "NXDOMAIN", "--name", "*.shop.test"]);
    let inside = |p: &str| lab.inside(p);
    assert_eq!(
        lookup(inside, "db.shop.test", V4, false),
        (2, "EAI_NONAME".into())
    );
    assert_eq!(
        lookup(inside, "DB.Shop.Test", V4, false),
        (2, "EAI_NONAME".into()),
        "names compare case-insensitively"
    );
    assert_eq!(
        resolver.queries("db.shop.test"),
        0,
        "answered before the resolver"
    );
    assert_eq!(
        lookup(inside, "api.other.test", V4, false),
        (0, "10.1.2.4 fd01::4".into())
    );
    assert_eq!(
        lookup(inside, "shop.test", V4, false).0,
        0,
        "*.shop.test is the names under it, not shop.test itself"
    );
    let outside = |p: &str| lab.outside(p);
    assert_eq!(
        lookup(outside, "db.shop.test", V4, false),
        (0, "10.1.2.3 fd01::3".into())
    );
    let getent = inside("unshare")
        .args(["-m", "sh", "-c"])
        .arg(format!(
            "mount -t tmpfs chaos-dns-test /etc && echo 'nameserver {V4}' > /etc/resolv.conf && \
             getent hosts db.shop.test"
        ))
        .status()
        .expect("getent");
    assert_eq!(getent.code(), Some(2), "getent: not found");
    let s = fault.interrupt();
    // A and AAAA for each of the three faulted lookups and getent's.
    assert!(s["injected"].as_u64().is_some_and(|n| n >= 6), "{s}");
    drop(resolver);
    lab.finish();
}

/// SERVFAIL for an exact name over TCP and over IPv6: glibc reports a temporary failure
/// (EAI_AGAIN); the same name outside the cgroup and another name inside resolve.
#[test]
fn servfail_over_tcp_and_ipv6() {
    let lab = Lab::new("dnssf");
    let resolver = Resolver::start(&lab);
    let fault = dns_fault(&lab, &["--rcode", "SERVFAIL", "--name", "db.shop.test"]);
    let inside = |p: &str| lab.inside(p);
    for (server, tcp) in [(V4, true), (V6, false), (V6, true)] {
        assert_eq!(
            lookup(inside, "db.shop.test", server, tcp),
            (2, "EAI_AGAIN".into()),
            "{server} tcp={tcp}"
        );
        assert_eq!(
            lookup(inside, "x.db.shop.test", server, tcp).0,
            0,
            "an exact name spares the names under it ({server} tcp={tcp})"
        );
    }
    assert_eq!(resolver.queries("db.shop.test"), 0);
    let outside = |p: &str| lab.outside(p);
    assert_eq!(lookup(outside, "db.shop.test", V6, true).0, 0);
    fault.interrupt();
    drop(resolver);
    lab.finish();
}

/// --dry-run: every lookup resolves as before, and the summary counts the queries that would
/// have been answered.
#[test]
fn dns_dry_run_answers_nothing_and_counts() {
    let lab = Lab::new("dnsdry");
    let resolver = Resolver::start(&lab);
    let fault = dns_fault(
        &lab,
        &["--rcode", "NXDOMAIN", "--name", "*.shop.test", "--dry-run"],
    );
    let inside = |p: &str| lab.inside(p);
    assert_eq!(
        lookup(inside, "db.shop.test", V4, false),
        (0, "10.1.2.3 fd01::3".into())
    );
    assert!(
        resolver.queries("db.shop.test") >= 2,
        "the resolver answered A and AAAA"
    );
    let s = fault.interrupt();
    assert!(s["injected"].as_u64() >= Some(2), "{s}");
    drop(resolver);
    lab.finish();
}
