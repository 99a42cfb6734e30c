//! Builds chaos-ebpf for bpfel-unknown-none and leaves the object at $OUT_DIR/chaos.bpf.o, where
//! src/ebpf.rs embeds it. (aya-build does this too, but its versions need rustc >= 1.98.)
//!
//! Uses the current toolchain with RUSTC_BOOTSTRAP=1 set only for that nested build, so a stable
//! toolchain with rust-src is enough; bpf-linker must be on PATH (scripts/setup.sh installs both).

use std::{
    env,
    path::{Path, PathBuf},
    process::Command,
};

fn main() {
    let manifest = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let root = manifest.parent().expect("workspace root").to_path_buf();
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("OUT_DIR"));
    for dir in ["chaos-ebpf", "chaos-common"] {
        println!("cargo:rerun-if-changed={}", root.join(dir).display());
    }
    println!("cargo:rerun-if-env-changed=CARGO_TARGET_DIR");

    // One bpf target dir for every host profile, so `cargo test` and `cargo build --release`
    // do not each rebuild core (about 25 s).
    let target_dir = env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"))
        .join("bpf");
    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(&root)
        .args(["build", "--package", "chaos-ebpf", "--bins", "--release"])
        .args(["--target", "bpfel-unknown-none", "-Z", "build-std=core"])
        .arg("--target-dir")
        .arg(&target_dir)
        .env("RUSTC_BOOTSTRAP", "1")
        // --btf: aya needs BTF for map and program relocations; debuginfo feeds it.
        .env(
            "CARGO_ENCODED_RUSTFLAGS",
            "-Cdebuginfo=2\x1f-Clink-arg=--btf",
        );
    for key in [
        "RUSTC",
        "RUSTC_WORKSPACE_WRAPPER",
        "RUSTC_WRAPPER",
        "RUSTFLAGS",
    ] {
        cmd.env_remove(key);
    }
    let status = cmd
        .status()
        .unwrap_or_else(|e| panic!("cannot run cargo for chaos-ebpf: {e}"));
    if !status.success() {
        panic!(
            "building the eBPF object failed ({status}). Missing prerequisites? \
             Run scripts/setup.sh (installs bpf-linker built for LLVM 22 and rust-src)."
        );
    }
    let object = target_dir.join("bpfel-unknown-none/release/chaos");
    copy(&object, &out_dir.join("chaos.bpf.o"));
}

fn copy(from: &Path, to: &Path) {
    std::fs::copy(from, to)
        .unwrap_or_else(|e| panic!("copy {} -> {}: {e}", from.display(), to.display()));
}
