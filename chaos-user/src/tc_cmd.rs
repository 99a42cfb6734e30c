//! Running iproute2's `tc` and `ip` for what aya has no call for (qdisc replace/delete, filter
//! delete by handle, ifb devices), and the two removals `chaos cleanup` makes from a record
//! alone. The child inherits the calling thread's network namespace.

use std::process::Command;

/// Runs `tc ARGS`; stdout on success, stderr (trimmed) on failure.
pub fn tc(args: &[&str]) -> Result<String, String> {
    let out = crate::child::dies_with_parent(&mut Command::new("tc"))
        .args(args)
        .output()
        .map_err(|e| format!("cannot run tc: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
    }
}

/// Runs `ip ARGS`; stderr (trimmed) on failure.
pub fn ip(args: &[&str]) -> Result<(), String> {
    let out = crate::child::dies_with_parent(&mut Command::new("ip"))
        .args(args)
        .output()
        .map_err(|e| format!("cannot run ip: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
    }
}

/// Deletes a network device (an ifb chaos made); gone already is fine.
pub fn delete_link(name: &str) -> Result<(), String> {
    match ip(&["link", "del", name]) {
        Err(e) if e.contains("Cannot find device") => Ok(()),
        other => other,
    }
}

/// Deleting the root qdisc puts the kernel's default back (noqueue, pfifo_fast, or mq +
/// defaults); already default, or the interface gone, is fine.
pub fn restore_default_qdisc(iface: &str) -> Result<(), String> {
    match tc(&["qdisc", "del", "dev", iface, "root"]) {
        Ok(_) => Ok(()),
        Err(e)
            if e.contains("Cannot delete qdisc with handle of zero")
                || e.contains("Cannot find device") =>
        {
            Ok(())
        }
        Err(e) => Err(e),
    }
}
