//! The last syscall backend: a kprobe on each entry point of the syscall (`__x64_sys_<name>`)
//! whose program fails the call with bpf_override_return. The kernel allows it only with
//! CONFIG_BPF_KPROBE_OVERRIDE and only on functions marked for error injection, which every
//! syscall entry point is. The program runs before the kernel looks up any path, so `--path` is
//! offered only for calls on an open descriptor (read, write, mmap), whose file the program
//! finds through the task's descriptor table. The links are fd-owned perf links.

use super::{Entry, Hook, catalogue::KP_CALL};
use crate::{
    ebpf,
    error::{Error, Result, chain},
    fault::FaultCore,
};
use aya::programs::{KProbe, kprobe::KProbeLinkId};
use chaos_common::syscall::SysRule;
use std::path::Path;

/// The prefix of syscall entry points on this architecture (the program reads the x86-64
/// register layout).
const ENTRY_PREFIX: &str = "__x64_sys_";

/// The kprobes of one fault (owned by the program in the fault's object).
pub struct Kprobes {
    prog: &'static str,
    links: Vec<KProbeLinkId>,
    pub program_id: Option<u32>,
}

fn program<'a>(core: &'a mut FaultCore<SysRule>, name: &'static str) -> Result<&'a mut KProbe> {
    ebpf::program_as(&mut core.ebpf, name, "kprobe program type")
}

/// Loads the entry's kprobe program and attaches it to every entry point of the syscall; on
/// refusal, why (for the error naming every backend).
pub fn attach(
    core: &mut FaultCore<SysRule>,
    entry: &Entry,
    with_paths: bool,
) -> std::result::Result<Kprobes, String> {
    let Hook::Lsm {
        kprobe, syscalls, ..
    } = entry.hook
    else {
        return Err("not a file or process syscall".into());
    };
    if !cfg!(target_arch = "x86_64") {
        return Err("chaos reads syscall arguments in the x86-64 register layout only".into());
    }
    if kprobe == KP_CALL && with_paths {
        return Err(format!(
            "--path needs the path the kernel looks up, and a kprobe on {ENTRY_PREFIX}{} runs \
             before that lookup (only read, write and mmap take --path here)",
            entry.name
        ));
    }
    let functions: Vec<String> = syscalls
        .iter()
        .map(|name| format!("{ENTRY_PREFIX}{name}"))
        .collect();
    override_takes_effect(&functions)?;
    let p = program(core, kprobe).map_err(|e| chain(&e))?;
    ebpf::load_once(|| p.load()).map_err(|e| format!("load refused: {}", chain(&e)))?;
    let mut links = Vec::new();
    for f in &functions {
        match p.attach(f, 0) {
            Ok(id) => links.push(id),
            Err(e) => {
                // Detach what is attached: a fault is all of its entry points or none.
                for id in links {
                    let _ = p.detach(id);
                }
                return Err(format!("attaching to {f} refused: {}", chain(&e)));
            }
        }
    }
    let program_id = core.ebpf.program(kprobe).and_then(ebpf::program_id);
    Ok(Kprobes {
        prog: kprobe,
        links,
        program_id,
    })
}

const OPTIMIZATION: &str = "/proc/sys/debug/kprobes-optimization";
const FTRACE_SITES: [&str; 2] = [
    "/sys/kernel/tracing/available_filter_functions",
    "/sys/kernel/debug/tracing/available_filter_functions",
];

/// Whether bpf_override_return's new return address is honoured at `functions`. A kprobe on a
/// function's ftrace site honours it; one placed with a breakpoint is, once the kernel has
/// optimized it into a jump, run from a callback that drops changes to the instruction
/// pointer: the program would count faults that never happen. Such probes stay breakpoints
/// when kprobe optimization is off.
pub(crate) fn override_takes_effect(functions: &[String]) -> std::result::Result<(), String> {
    let optimizing = std::fs::read_to_string(OPTIMIZATION).is_ok_and(|v| v.trim() != "0");
    let sites = FTRACE_SITES
        .iter()
        .find_map(|p| std::fs::read_to_string(p).ok());
    override_verdict(optimizing, sites.as_deref(), functions)
}

/// `override_takes_effect` on what it read: whether kprobes are optimized, and
/// available_filter_functions if there is one.
fn override_verdict(
    optimizing: bool,
    sites: Option<&str>,
    functions: &[String],
) -> std::result::Result<(), String> {
    if !optimizing {
        return Ok(());
    }
    let on_ftrace = |f: &String| {
        sites.is_some_and(|s| {
            s.lines()
                .any(|l| l.split_whitespace().next() == Some(f.as_str()))
        })
    };
    match functions.iter().find(|f| !on_ftrace(f)) {
        None => Ok(()),
        Some(f) => Err(format!(
            "{f} has no ftrace site here ({}), so its kprobe is optimized into a jump, which \
             ignores bpf_override_return; `sysctl debug.kprobes-optimization=0` keeps kprobes \
             as breakpoints, which honour it",
            if sites.is_some() {
                "not in available_filter_functions"
            } else {
                "no tracefs with available_filter_functions"
            }
        )),
    }
}

impl Kprobes {
    /// Pins every link under `dir` (a background fault).
    pub fn pin(self, core: &mut FaultCore<SysRule>, dir: &Path) -> Result<()> {
        let p = program(core, self.prog)?;
        for (i, id) in self.links.into_iter().enumerate() {
            let path = dir.join(format!("link{i}"));
            let link = p
                .take_link(id)
                .map_err(|e| Error::program("taking a kprobe link", e))?;
            // A kernel that attaches kprobes without BPF links cannot pin them: the message
            // says so; run such a fault in the foreground.
            crate::background::pin_link(
                link,
                "a kprobe link (a kernel attaching kprobes without BPF links cannot pin it: run \
                 the fault in the foreground)",
                &path,
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::override_verdict;

    #[test]
    fn override_needs_ftrace_sites_or_unoptimized_probes() {
        let f = [
            "__x64_sys_write".to_string(),
            "__x64_sys_pwrite64".to_string(),
        ];
        let sites = "__x64_sys_write\n__x64_sys_pwrite64 [vmlinux]\n";
        assert!(override_verdict(true, Some(sites), &f).is_ok());
        assert!(override_verdict(false, None, &f).is_ok());
        let e =
            override_verdict(true, Some("__x64_sys_write\n"), &f).expect_err("pwrite64 unlisted");
        assert!(
            e.starts_with("__x64_sys_pwrite64 has no ftrace site"),
            "{e}"
        );
        assert!(e.contains("debug.kprobes-optimization=0"), "{e}");
        // A prefix of a listed name is not a match.
        let e = override_verdict(true, Some("__x64_sys_write_x\n"), &f[..1]).expect_err("prefix");
        assert!(e.contains("not in available_filter_functions"), "{e}");
        assert!(override_verdict(true, None, &f).is_err());
    }
}
