//! Bad input: exit status 2, a one-line message naming the flag and the fix, nothing attached.
//! Every case aims at a real lab interface/cgroup, so an attach that slipped through would show.

use chaos_tests::{chaos, lab::Lab};

/// (arguments with {if}/{ns}/{cg} standing for the lab's, flag to name, words of the fix)
const CASES: &[(&str, &str, &str)] = &[
    (
        "net drop --iface {if} --netns {ns} --duration 5s --percent 0",
        "--percent",
        "--dry-run",
    ),
    (
        "net delay --iface {if} --netns {ns} --duration 5s --latency 10ms --loss 0",
        "--loss",
        "above 0",
    ),
    (
        "syscall connect --cgroup {cg} --errno EPERM --duration 5s --percent 0.0000000001",
        "--percent",
        "would inject nothing",
    ),
    (
        "net drop --iface {if} --netns {ns} --duration 5s --percent 50 --correlation 100",
        "--correlation",
        "below 100",
    ),
    (
        "net drop --iface {if} --netns {ns} --duration 5s --percent 150",
        "--percent",
        "0 to 100",
    ),
    (
        "net drop --iface {if} --netns {ns} --duration 5s --dst 10.0.0.0/33",
        "--dst",
        "10.0.0.0/8",
    ),
    (
        "net drop --iface {if} --netns {ns} --duration 5s --src not-an-ip",
        "--src",
        "CIDR",
    ),
    (
        "net drop --iface {if} --netns {ns} --duration 5s --dst-file /proc/version",
        "--dst-file",
        "line 1",
    ),
    (
        "net drop --iface {if} --netns {ns} --duration 5s --dst-file /nonexistent",
        "--dst-file",
        "cannot read",
    ),
    (
        "net drop --iface {if} --netns {ns} --duration 5s --loss 5",
        "--loss",
        "--percent",
    ),
    (
        "net drop --iface {if} --netns {ns} --duration 5s --dport 70000",
        "--dport",
        "1-65535",
    ),
    (
        "net drop --iface nosuch0 --netns {ns} --duration 5s",
        "--iface",
        "ip -n",
    ),
    (
        "net drop --iface {if} --netns chaos-no-such-ns --duration 5s",
        "--netns",
        "ip netns list",
    ),
    (
        "net drop --iface {if} --netns {ns} --duration 5s --cgroup chaos-nope",
        "--cgroup",
        "cgroup v2 path",
    ),
    (
        "net drop --iface {if} --netns {ns} --duration 0s",
        "--duration",
        "positive duration",
    ),
    (
        "net drop --iface {if} --netns {ns}",
        "--duration",
        "--duration",
    ),
    (
        "syscall connect --errno EFOO --cgroup {cg} --duration 5s",
        "--errno",
        "ECONNREFUSED",
    ),
    (
        "syscall connect --errno ENOSPC --cgroup {cg} --duration 5s",
        "--errno",
        "cannot be returned",
    ),
    (
        "syscall connect --errno ECONNREFUSED --cgroup {cg} --duration forever",
        "--duration",
        "e.g. 500ms",
    ),
    (
        "syscall connect --errno ECONNREFUSED --duration 5s",
        "--cgroup",
        "--pid",
    ),
    (
        "syscall connect --errno ECONNREFUSED --cgroup chaos-nope --duration 5s",
        "--cgroup",
        "not found",
    ),
    (
        "syscall connect --errno ECONNREFUSED --percent -5 --cgroup {cg} --duration 5s",
        "--percent",
        "-5 is out of range",
    ),
    (
        "net drop --iface {if} --duration 5s",
        "--iface",
        "needs --netns NAME",
    ),
    (
        "syscall fsync --errno EIO --cgroup {cg} --duration 5s",
        "--errno",
        "fsync() takes --signal SIG only",
    ),
    (
        "syscall connect --errno ECONNREFUSED --cgroup /proc --duration 5s",
        "--cgroup",
        "/proc is not under the cgroup v2 mount",
    ),
    (
        "net drop --protocol udp --duration 5s",
        "--iface",
        "--direction ingress",
    ),
    (
        "net delay --iface {if} --netns {ns} --cgroup {cg} --direction ingress --latency 10ms --duration 5s",
        "--direction",
        "egress only",
    ),
    (
        "net duplicate --cgroup {cg} --direction ingress --duration 5s",
        "--direction",
        "drop only",
    ),
    (
        "syscall ioctl --errno EIO --cgroup {cg} --duration 5s",
        "NAME",
        "chaos syscall --list",
    ),
    (
        "syscall write --errno ECONNREFUSED --cgroup {cg} --duration 5s",
        "--errno",
        "ENOSPC",
    ),
    (
        "syscall write --errno ENOSPC --path var/lib --cgroup {cg} --duration 5s",
        "--path",
        "not absolute",
    ),
    (
        "syscall open --errno EACCES --path /no/such/dir --cgroup {cg} --duration 5s",
        "--path",
        "must exist",
    ),
    (
        "syscall fork --errno EAGAIN --path /tmp --cgroup {cg} --duration 5s",
        "--path",
        "only the scope",
    ),
    (
        "syscall connect --errno ECONNREFUSED --path /tmp --cgroup {cg} --duration 5s",
        "--path",
        "--dst",
    ),
    (
        "syscall write --errno ENOSPC --comm a-name-far-too-long --cgroup {cg} --duration 5s",
        "--comm",
        "1-15 bytes",
    ),
    (
        "syscall write --signal SIGFOO --cgroup {cg} --duration 5s",
        "--signal",
        "SIGKILL",
    ),
    (
        "syscall open --signal SIGKILL --path /tmp --cgroup {cg} --duration 5s",
        "--path",
        "fsync",
    ),
    (
        "syscall ioctl --signal SIGKILL --cgroup {cg} --duration 5s",
        "NAME",
        "fdatasync",
    ),
    (
        "syscall fsync --signal SIGKILL --port 80 --cgroup {cg} --duration 5s",
        "--port",
        "local port",
    ),
    (
        "syscall write --cgroup {cg} --duration 5s",
        "--errno",
        "--signal",
    ),
];

#[test]
fn every_bad_input_is_refused_before_attaching() {
    let lab = Lab::new("bad");
    for (template, flag, hint) in CASES {
        let line = template
            .replace("{if}", &lab.sb.server_if)
            .replace("{ns}", &lab.sb.server_ns)
            .replace("{cg}", &lab.cgroup());
        let args: Vec<&str> = line.split_whitespace().collect();
        let (code, out, err) = chaos(&args);
        assert_eq!(code, 2, "{line}: exit {code}, stdout {out}, stderr {err}");
        let msg = err.trim();
        assert_eq!(msg.lines().count(), 1, "one line for {line}: {msg}");
        assert!(
            msg.contains(flag),
            "{line}: message does not name {flag}: {msg}"
        );
        assert!(
            msg.contains(hint),
            "{line}: message lacks the fix '{hint}': {msg}"
        );
        assert!(out.is_empty(), "nothing on stdout for {line}: {out}");
        lab.assert_nothing_attached();
    }
    lab.finish();
}

/// Log lines are plain text when stderr is not a terminal, and on a terminal with NO_COLOR set
/// (no-color.org); coloured only on a terminal without it. `script` gives chaos a terminal.
#[test]
fn logs_are_coloured_only_on_a_terminal_without_no_color() {
    let bin = chaos_tests::chaos_bin();
    let bin = bin.to_str().expect("utf-8 path");
    let redirected = std::process::Command::new(bin)
        .arg("doctor")
        .env("CHAOS_LOG", "debug")
        .env_remove("NO_COLOR")
        .output()
        .expect("chaos doctor");
    let err = String::from_utf8_lossy(&redirected.stderr);
    assert!(err.contains("DEBUG"), "some log lines: {err}");
    assert!(!err.contains('\x1b'), "colour codes in a file: {err:?}");
    let on_terminal = |no_color: Option<&str>| {
        let mut cmd = std::process::Command::new("script");
        cmd.args(["-qec", &format!("{bin} doctor >/dev/null"), "/dev/null"])
            .env("CHAOS_LOG", "debug")
            .env_remove("NO_COLOR");
        if let Some(v) = no_color {
            cmd.env("NO_COLOR", v);
        }
        let out = cmd.output().expect("script (util-linux)");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let coloured = on_terminal(None);
    assert!(
        coloured.contains("DEBUG") && coloured.contains('\x1b'),
        "{coloured:?}"
    );
    let plain = on_terminal(Some("1"));
    assert!(
        plain.contains("DEBUG") && !plain.contains('\x1b'),
        "{plain:?}"
    );
}

/// `--log-format json`: every log line is one JSON object with a timestamp, a level and the
/// message (what a DaemonSet's log collector parses); no colour codes.
#[test]
fn log_format_json_writes_one_object_per_line() {
    let out = std::process::Command::new(chaos_tests::chaos_bin())
        .args(["--log-format", "json", "doctor"])
        .env("CHAOS_LOG", "debug")
        .output()
        .expect("chaos doctor");
    let err = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = err.lines().collect();
    assert!(!lines.is_empty(), "some log lines");
    for l in lines {
        let v: serde_json::Value =
            serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: not JSON: {l}"));
        assert!(
            v["timestamp"].is_string() && v["level"].is_string() && v["fields"].is_object(),
            "{l}"
        );
    }
    let (code, _, err) = chaos_tests::chaos(&["--log-format", "xml", "doctor"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--log-format"), "{err}");
}
