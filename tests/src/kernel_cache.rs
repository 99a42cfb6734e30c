//! What a file or crash fault's start read from the kernel's BTF: run twice against a fresh
//! kernel cache ($CHAOS_CACHE_DIR), the first start parses /sys/kernel/btf/vmlinux and the
//! second finds everything it needs in the cache (chaos's debug log says which).

use crate::lab::Lab;

/// The debug line chaos logs when it parses the kernel's BTF.
pub const PARSE: &str = "parsing /sys/kernel/btf/vmlinux";

/// Runs `chaos ARGS` (a fault that ends by itself: give it `--duration`) twice with a fresh
/// cache and debug logs; their stderr. Panics if either run fails.
pub fn two_starts(lab: &Lab, tag: &str, args: &[&str]) -> [String; 2] {
    let dir = std::env::temp_dir().join(format!("chaos-kcache-{}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let run = || {
        let mut cmd = lab.chaos_cmd();
        cmd.env("CHAOS_CACHE_DIR", &dir)
            .env("CHAOS_LOG", "chaos=debug");
        let (code, out, err) = crate::chaos_via(cmd, args);
        assert_eq!(code, 0, "chaos {args:?}: {out} {err}");
        err
    };
    let starts = [run(), run()];
    std::fs::remove_dir_all(&dir).expect("remove the test cache");
    starts
}

/// Asserts that the first start parsed the kernel's BTF and the second did not.
pub fn assert_second_start_parses_nothing(starts: &[String; 2]) {
    assert!(
        starts[0].contains(PARSE),
        "first start, empty cache: {}",
        starts[0]
    );
    assert!(
        !starts[1].contains(PARSE),
        "second start parsed the kernel's BTF again: {}",
        starts[1]
    );
}
