//! Bad input: exit status 2, a one-line message naming the flag and the fix, nothing attached.
//! Every case aims at a real lab interface/cgroup, so an attach that slipped through would show.

use chaos_tests::{chaos, lab::Lab};

fn refused(lab: &Lab, args: &[&str], flag: &str, hint: &str) {
    let (code, out, err) = chaos(args);
    assert_eq!(code, 2, "{args:?}: exit {code}, stdout {out}, stderr {err}");
    let line = err.trim();
    assert_eq!(line.lines().count(), 1, "one line for {args:?}: {line}");
    assert!(
        line.contains(flag),
        "{args:?}: message does not name {flag}: {line}"
    );
    assert!(
        line.contains(hint),
        "{args:?}: message lacks the fix '{hint}': {line}"
    );
    assert!(out.is_empty(), "nothing on stdout for {args:?}: {out}");
    lab.assert_nothing_attached();
}

#[test]
fn every_bad_input_is_refused_before_attaching() {
    let lab = Lab::new("bad");
    let (ifc, ns, cg) = (
        lab.sb.server_if.clone(),
        lab.sb.server_ns.clone(),
        lab.cgroup(),
    );
    let net = |extra: &[&str]| -> Vec<String> {
        let mut v: Vec<String> = [
            "net",
            "drop",
            "--iface",
            &ifc,
            "--netns",
            &ns,
            "--duration",
            "5s",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        v.extend(extra.iter().map(|s| s.to_string()));
        v
    };
    let run = |v: Vec<String>, flag: &str, hint: &str| {
        let args: Vec<&str> = v.iter().map(String::as_str).collect();
        refused(&lab, &args, flag, hint);
    };
    run(net(&["--percent", "150"]), "--percent", "0 to 100");
    run(net(&["--dst", "10.0.0.0/33"]), "--dst", "10.0.0.0/8");
    run(net(&["--src", "not-an-ip"]), "--src", "CIDR");
    run(net(&["--dport", "70000"]), "--dport", "1-65535");
    run(
        vec![
            "net".into(),
            "drop".into(),
            "--iface".into(),
            "nosuch0".into(),
            "--netns".into(),
            ns.clone(),
            "--duration".into(),
            "5s".into(),
        ],
        "--iface",
        "ip -n",
    );
    run(
        vec![
            "net".into(),
            "drop".into(),
            "--iface".into(),
            ifc.clone(),
            "--netns".into(),
            "chaos-no-such-ns".into(),
            "--duration".into(),
            "5s".into(),
        ],
        "--netns",
        "ip netns list",
    );
    run(
        net(&["--cgroup", "chaos-no-such-cgroup"]),
        "--cgroup",
        "cgroup v2 path",
    );
    run(
        vec![
            "net".into(),
            "drop".into(),
            "--iface".into(),
            ifc.clone(),
            "--netns".into(),
            ns.clone(),
            "--duration".into(),
            "0s".into(),
        ],
        "--duration",
        "positive duration",
    );
    run(
        vec![
            "net".into(),
            "drop".into(),
            "--iface".into(),
            ifc.clone(),
            "--netns".into(),
            ns.clone(),
        ],
        "--duration",
        "--duration",
    );
    let sys = |errno: &str, dur: &str| -> Vec<String> {
        [
            "syscall",
            "connect",
            "--errno",
            errno,
            "--cgroup",
            &cg,
            "--duration",
            dur,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    };
    run(sys("EFOO", "5s"), "--errno", "ECONNREFUSED");
    run(sys("ENOSPC", "5s"), "--errno", "cannot be returned");
    run(sys("ECONNREFUSED", "forever"), "--duration", "e.g. 500ms");
    run(
        vec![
            "syscall".into(),
            "connect".into(),
            "--errno".into(),
            "ECONNREFUSED".into(),
            "--duration".into(),
            "5s".into(),
        ],
        "--cgroup",
        "--pid",
    );
    run(
        vec![
            "syscall".into(),
            "connect".into(),
            "--errno".into(),
            "ECONNREFUSED".into(),
            "--cgroup".into(),
            "chaos-missing".into(),
            "--duration".into(),
            "5s".into(),
        ],
        "--cgroup",
        "not found",
    );
    lab.finish();
}
