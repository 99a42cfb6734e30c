//! Struct offsets and function ids of the running kernel, from /sys/kernel/btf/vmlinux.
//! The LSM / fmod_ret programs read kernel structs at these offsets: rustc cannot emit CO-RE
//! relocations, so userspace does the lookup that libbpf would do for C programs.

use crate::error::{Error, Result};
use btf_rs::{Btf, Type};
use chaos_common::syscall::KernelOffsets;

pub const VMLINUX: &str = "/sys/kernel/btf/vmlinux";

pub struct KernelBtf(Btf);

fn missing(what: String) -> Error {
    Error::Unsupported {
        feature: "a kernel struct layout chaos understands (BTF)",
        hint: format!(
            "{what} was not found in {VMLINUX}; please report the kernel version (uname -r)"
        ),
    }
}

impl KernelBtf {
    pub fn load() -> Result<Self> {
        Btf::from_file(VMLINUX)
            .map(Self)
            .map_err(|e| Error::Unsupported {
                feature: "kernel BTF (CONFIG_DEBUG_INFO_BTF)",
                hint: format!(
                    "cannot read {VMLINUX} ({e}); file faults need it, network faults do not"
                ),
            })
    }

    /// Byte offset of `member` in `struct strukt`, looking inside anonymous structs and unions.
    pub fn offset(&self, strukt: &str, member: &str) -> Result<u32> {
        let types = self
            .0
            .resolve_types_by_name(strukt)
            .map_err(|_| missing(format!("struct {strukt}")))?;
        types
            .iter()
            .find_map(|t| match t {
                Type::Struct(s) => self.find_member(s, member),
                _ => None,
            })
            .ok_or_else(|| missing(format!("{strukt}.{member}")))
    }

    fn find_member(&self, s: &btf_rs::Struct, member: &str) -> Option<u32> {
        for m in &s.members {
            let name = self.0.resolve_name(m).unwrap_or_default();
            let bits = m.bit_offset();
            if name == member {
                return Some(bits / 8);
            }
            if name.is_empty()
                && let Ok(Type::Struct(inner) | Type::Union(inner)) = self.0.resolve_chained_type(m)
                && let Some(off) = self.find_member(&inner, member)
            {
                return Some(bits / 8 + off);
            }
        }
        None
    }

    /// BTF id of a kernel function (the attach point of an fmod_ret program).
    pub fn func_id(&self, name: &str) -> Result<u32> {
        let ids = self.0.resolve_ids_by_name(name).unwrap_or_default();
        ids.into_iter()
            .find(|&id| matches!(self.0.resolve_type_by_id(id), Ok(Type::Func(_))))
            .ok_or_else(|| missing(format!("function {name}")))
    }

    /// Whether the kernel has a function of that name (e.g. the bpf_lsm_<hook> of a hook).
    pub fn has_func(&self, name: &str) -> bool {
        self.func_id(name).is_ok()
    }

    pub fn offsets(&self) -> Result<KernelOffsets> {
        let o = |s, m| self.offset(s, m);
        Ok(KernelOffsets {
            file_dentry: o("file", "f_path")? + o("path", "dentry")?,
            file_inode: o("file", "f_inode")?,
            inode_mode: o("inode", "i_mode")?,
            inode_ino: o("inode", "i_ino")?,
            inode_sb: o("inode", "i_sb")?,
            sb_dev: o("super_block", "s_dev")?,
            dentry_parent: o("dentry", "d_parent")?,
            dentry_inode: o("dentry", "d_inode")?,
            path_dentry: o("path", "dentry")?,
            socket_sk: o("socket", "sk")?,
            sk_num: o("sock", "__sk_common")? + o("sock_common", "skc_num")?,
            task_files: o("task_struct", "files")?,
            files_fdt: o("files_struct", "fdt")?,
            fdt_fd: o("fdtable", "fd")?,
            fdt_max_fds: o("fdtable", "max_fds")?,
            file_private: o("file", "private_data")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Against this machine's kernel: the offsets are found and plausible.
    #[test]
    fn offsets_of_the_running_kernel() {
        // Only a kernel without BTF skips, and not in a run with expectations (tests/expect.toml:
        // every kernel there has it); a BTF that is there must parse.
        if !std::path::Path::new(VMLINUX).exists() && std::env::var_os("CHAOS_EXPECT").is_none() {
            eprintln!("SKIPPED offsets_of_the_running_kernel: no {VMLINUX}");
            return;
        }
        let btf = KernelBtf::load().expect("the kernel's BTF parses");
        let o = btf.offsets().expect("offsets");
        assert_eq!(o.path_dentry, 8, "struct path is {{ mnt, dentry }}");
        assert!(o.file_dentry > 0 && o.file_inode > 0 && o.dentry_parent > 0);
        assert!(o.sk_num > 0, "skc_num sits inside an anonymous union");
        assert!(o.task_files > 0 && o.files_fdt > 0 && o.fdt_fd > 0 && o.file_private > 0);
        assert!(btf.func_id("security_file_open").is_ok());
        assert!(btf.has_func("bpf_lsm_file_open"));
        assert!(btf.func_id("no_such_function_here").is_err());
    }
}
