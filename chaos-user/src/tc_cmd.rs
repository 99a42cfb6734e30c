//! Running iproute2's `tc` for what aya has no call for (qdisc replace/delete, filter delete by
//! handle). The child inherits the calling thread's network namespace.

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
