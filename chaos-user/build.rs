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
    // A position-dependent `chaos`: a PIE's 52,000 relative relocations made the dynamic
    // loader write (and so fault in) 1.4 MB of .data.rel.ro at every start.
    println!("cargo:rustc-link-arg-bins=-no-pie");

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
    // Every program (chaos doctor, tests), and each family's alone: aya parses, relocates and
    // links every program of the object it is given, so a packet fault need not pay for the
    // twenty syscall programs nor a syscall fault for the classifiers.
    let is_packets = |name: &[u8]| name == b"classifier" || name.starts_with(b"cgroup_skb/");
    strip_debug(&object, &out_dir.join("chaos.bpf.o"), |_| true);
    strip_debug(&object, &out_dir.join("chaos-packets.bpf.o"), is_packets);
    strip_debug(&object, &out_dir.join("chaos-calls.bpf.o"), |n| {
        !is_packets(n)
    });
}

/// Copies the object without its DWARF sections (`.debug_*`, their relocations) and the
/// relocations of `.BTF.ext`, none of which aya reads: it collected their ~25,000 relocations
/// at every start of a fault. The BTF (from that DWARF, by bpf-linker) stays. Of the program
/// sections, only those `keep` accepts (by name) stay. With the `object` crate's ELF builder,
/// which aya itself builds on, rather than an `llvm-strip` that would have to be found next to
/// the right LLVM.
fn strip_debug(from: &Path, to: &Path, keep: impl Fn(&[u8]) -> bool) {
    use object::build::elf::Builder;
    let data = std::fs::read(from).unwrap_or_else(|e| panic!("read {}: {e}", from.display()));
    let mut elf = Builder::read(&*data).unwrap_or_else(|e| panic!("parse {}: {e}", from.display()));
    let debug = |name: &[u8]| name.starts_with(b".debug");
    let dropped_program = |s: &object::build::elf::Section| {
        let code = s.sh_flags & u64::from(object::elf::SHF_EXECINSTR) != 0;
        code && &*s.name != b".text" && !keep(&s.name)
    };
    // The sections that go (the DWARF, programs not kept), and those whose relocations go too
    // (.BTF.ext).
    let dropped: Vec<_> = elf
        .sections
        .iter()
        .filter(|s| debug(&s.name) || dropped_program(s))
        .map(|s| s.id())
        .collect();
    let unrelocated: Vec<_> = elf
        .sections
        .iter()
        .filter(|s| dropped.contains(&s.id()) || &*s.name == b".BTF.ext")
        .map(|s| s.id())
        .collect();
    for s in elf.sections.iter_mut() {
        let relocates = s
            .sh_info_section
            .is_some_and(|id| unrelocated.contains(&id));
        let is_relocation = matches!(s.data, object::build::elf::SectionData::Relocation(_));
        s.delete = dropped.contains(&s.id()) || (is_relocation && relocates);
    }
    elf.delete_orphans();
    // bpf-linker keeps section names in the symbol string table; the writer wants them apart.
    if !elf
        .sections
        .iter()
        .any(|s| matches!(s.data, object::build::elf::SectionData::SectionString))
    {
        let names = elf.sections.add();
        names.name = b".shstrtab"[..].into();
        names.sh_type = object::elf::SHT_STRTAB;
        names.sh_addralign = 1;
        names.data = object::build::elf::SectionData::SectionString;
    }
    let mut out = Vec::new();
    elf.write(&mut out)
        .unwrap_or_else(|e| panic!("write {}: {e}", to.display()));
    std::fs::write(to, out).unwrap_or_else(|e| panic!("write {}: {e}", to.display()));
}
