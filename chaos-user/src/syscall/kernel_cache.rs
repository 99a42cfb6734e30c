//! What file and crash faults need from the running kernel's BTF, kept per kernel build: the
//! struct offsets their programs read (`KernelOffsets`) and the BTF ids of the functions they
//! attach to (`bpf_lsm_<hook>`, `security_<hook>`). Finding them parses all of
//! /sys/kernel/btf/vmlinux (btf-rs reads every type: about 200 ms on this 2-vCPU machine,
//! seconds in an emulated guest); reading them back takes microseconds. The key is the
//! kernel's GNU build id (the ELF note in /sys/kernel/notes), so a new kernel, even one with
//! the same release string, never reads another kernel's. Best effort: without a build id or a
//! writable cache directory, they are looked up every time.

use super::kernel_btf::KernelBtf;
use crate::error::Result;
use chaos_common::syscall::KernelOffsets;
use std::{
    fs,
    io::Write,
    os::unix::fs::{MetadataExt, OpenOptionsExt},
    path::{Path, PathBuf},
};

/// Where the cache lives: $CHAOS_CACHE_DIR, else /var/cache/chaos.
fn cache_dir() -> PathBuf {
    std::env::var_os("CHAOS_CACHE_DIR")
        .map_or_else(|| PathBuf::from("/var/cache/chaos"), PathBuf::from)
}

/// The running kernel's cache, with its BTF parsed at most once, and only on a miss, and its
/// build id read at most once.
#[derive(Default)]
pub struct KernelCache {
    btf: Option<KernelBtf>,
    /// None until read; then the build id, if the kernel has one.
    build_id: Option<Option<String>>,
}

impl KernelCache {
    /// The struct offsets file and crash programs read.
    pub fn offsets(&mut self) -> Result<KernelOffsets> {
        self.cached("offsets", decode, encode, |btf| btf.offsets())
    }

    /// The BTF id of kernel function `name` (an LSM or fmod_ret attach point).
    pub fn func_id(&mut self, name: &str) -> Result<u32> {
        let decode = |b: &[u8]| Some(u32::from_le_bytes(b.try_into().ok()?));
        let encode = |id: &u32| id.to_le_bytes().to_vec();
        self.cached(&format!("btf-id-{name}"), decode, encode, |btf| {
            btf.func_id(name)
        })
    }

    /// The value cached as `what` for this kernel build, else `lookup`'s (then cached).
    fn cached<T>(
        &mut self,
        what: &str,
        decode: impl Fn(&[u8]) -> Option<T>,
        encode: impl Fn(&T) -> Vec<u8>,
        lookup: impl FnOnce(&KernelBtf) -> Result<T>,
    ) -> Result<T> {
        let id = self.build_id.get_or_insert_with(build_id);
        let path = id
            .as_ref()
            .map(|id| cache_dir().join(format!("kernel-{what}-{id}")));
        if let Some(p) = &path
            && let Some(v) = trusted(p).and_then(|()| decode(&fs::read(p).ok()?))
        {
            tracing::debug!("kernel {what} from {}", p.display());
            return Ok(v);
        }
        let v = lookup(self.btf()?)?;
        if let Some(p) = &path
            && let Err(e) = store(p, &encode(&v))
        {
            tracing::debug!("kernel {what} not cached in {}: {e}", p.display());
        }
        Ok(v)
    }

    fn btf(&mut self) -> Result<&KernelBtf> {
        if self.btf.is_none() {
            // tests/src/kernel_cache.rs looks for this line: a start with a full cache has none.
            tracing::debug!("parsing {}", super::kernel_btf::VMLINUX);
            self.btf = Some(KernelBtf::load()?);
        }
        Ok(self.btf.as_ref().expect("just parsed"))
    }
}

/// Some when the cache file is ours to believe: owned by this user (root) and writable by no
/// one else. The programs read kernel memory at these offsets (checked reads: wrong ones
/// mismatch, they cannot crash), so a file another user could write is looked up afresh.
fn trusted(path: &Path) -> Option<()> {
    let m = fs::metadata(path).ok()?;
    // SAFETY: geteuid has no preconditions.
    let me = unsafe { libc::geteuid() };
    (m.uid() == me && m.mode() & 0o022 == 0).then_some(())
}

fn store(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension(format!("{}.tmp", std::process::id()));
    // 0644 whatever the umask adds: a file others could write would not be believed.
    fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o644)
        .open(&tmp)?
        .write_all(bytes)?;
    fs::rename(&tmp, path)
}

const FIELDS: usize = size_of::<KernelOffsets>() / 4;

/// Every field is a u32 (#[repr(C)], no padding): little-endian, in declaration order.
fn encode(o: &KernelOffsets) -> Vec<u8> {
    // SAFETY: KernelOffsets is #[repr(C)] and made of u32 fields only: FIELDS u32s, no padding.
    let words: [u32; FIELDS] = unsafe { std::mem::transmute_copy(o) };
    words.iter().flat_map(|w| w.to_le_bytes()).collect()
}

/// None for a file of another length (a build with other fields): it is looked up again.
fn decode(bytes: &[u8]) -> Option<KernelOffsets> {
    if bytes.len() != FIELDS * 4 {
        return None;
    }
    let mut words = [0u32; FIELDS];
    for (w, b) in words.iter_mut().zip(bytes.chunks_exact(4)) {
        *w = u32::from_le_bytes(b.try_into().ok()?);
    }
    // SAFETY: as in `encode`; any u32 values make a valid KernelOffsets.
    Some(unsafe { std::mem::transmute_copy(&words) })
}

/// The running kernel's GNU build id in hex, from the ELF notes in /sys/kernel/notes.
fn build_id() -> Option<String> {
    gnu_build_id(&fs::read("/sys/kernel/notes").ok()?)
}

/// Walks ELF notes (namesz, descsz, type, name and desc each padded to 4 bytes) for the one
/// named "GNU" of type NT_GNU_BUILD_ID (3).
fn gnu_build_id(mut notes: &[u8]) -> Option<String> {
    let word = |b: &[u8], at: usize| Some(u32::from_ne_bytes(b.get(at..at + 4)?.try_into().ok()?));
    let pad = |n: usize| n.div_ceil(4) * 4;
    while notes.len() >= 12 {
        let (namesz, descsz, kind) = (
            word(notes, 0)? as usize,
            word(notes, 4)? as usize,
            word(notes, 8)?,
        );
        let name = notes.get(12..12 + namesz)?;
        let desc_at = 12 + pad(namesz);
        let desc = notes.get(desc_at..desc_at + descsz)?;
        if kind == 3 && name == b"GNU\0" && !desc.is_empty() {
            return Some(desc.iter().map(|b| format!("{b:02x}")).collect());
        }
        notes = notes.get(desc_at + pad(descsz)..)?;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn note(name: &[u8], kind: u32, desc: &[u8]) -> Vec<u8> {
        let mut n = Vec::new();
        for w in [name.len() as u32, desc.len() as u32, kind] {
            n.extend(w.to_ne_bytes());
        }
        n.extend(name);
        n.resize(n.len().div_ceil(4) * 4, 0);
        n.extend(desc);
        n.resize(n.len().div_ceil(4) * 4, 0);
        n
    }

    #[test]
    fn the_gnu_build_id_note_is_found_among_others() {
        let mut notes = note(b"Xen\0", 6, &[1, 2, 3, 4, 5]);
        notes.extend(note(b"GNU\0", 1, &[9; 16]));
        notes.extend(note(b"GNU\0", 3, &[0xab, 0x01, 0xff]));
        assert_eq!(gnu_build_id(&notes).as_deref(), Some("ab01ff"));
        assert_eq!(gnu_build_id(&note(b"GNU\0", 1, &[1])), None);
        assert_eq!(gnu_build_id(&notes[..20]), None, "a cut note is no id");
    }

    #[test]
    fn offsets_round_trip_and_a_wrong_length_is_no_cache() {
        let o = KernelOffsets {
            file_dentry: 1,
            sk_num: 0x1234_5678,
            file_private: 200,
            ..Default::default()
        };
        let bytes = encode(&o);
        assert_eq!(bytes.len(), size_of::<KernelOffsets>());
        assert_eq!(decode(&bytes), Some(o));
        assert_eq!(decode(&bytes[..bytes.len() - 4]), None);
    }

    /// On the running kernel: the first call parses the BTF and writes the cache, the second
    /// reads the same offsets back from it.
    #[test]
    fn the_running_kernels_offsets_and_ids_are_cached_by_build_id() {
        if !std::path::Path::new(super::super::kernel_btf::VMLINUX).exists()
            && std::env::var_os("CHAOS_EXPECT").is_none()
        {
            eprintln!("SKIPPED the_running_kernels_offsets_and_ids_are_cached_by_build_id: no BTF");
            return;
        }
        let id = build_id().expect("this kernel has a GNU build id note");
        let dir = std::env::temp_dir().join(format!("chaos-cache-test-{}", std::process::id()));
        // SAFETY: this test alone reads CHAOS_CACHE_DIR in this process.
        unsafe { std::env::set_var("CHAOS_CACHE_DIR", &dir) };
        let offsets = || KernelCache::default().offsets();
        let parsed = offsets().expect("offsets from the BTF");
        let file = dir.join(format!("kernel-offsets-{id}"));
        assert_eq!(fs::read(&file).ok().and_then(|b| decode(&b)), Some(parsed));
        fs::write(
            &file,
            encode(&KernelOffsets {
                file_dentry: 7,
                ..parsed
            }),
        )
        .expect("write");
        assert_eq!(
            offsets().expect("cached").file_dentry,
            7,
            "read from the cache"
        );
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&file, fs::Permissions::from_mode(0o666)).expect("chmod");
        assert_eq!(
            offsets().expect("looked up again"),
            parsed,
            "a cache file others can write is not believed"
        );
        let f = "security_file_permission";
        let id_parsed = KernelCache::default()
            .func_id(f)
            .expect("a function every kernel has");
        let file = dir.join(format!("kernel-btf-id-{f}-{id}"));
        assert_eq!(fs::read(&file).ok(), Some(id_parsed.to_le_bytes().to_vec()));
        fs::write(&file, 7u32.to_le_bytes()).expect("write");
        assert_eq!(
            KernelCache::default().func_id(f).ok(),
            Some(7),
            "read from the cache"
        );
        fs::remove_dir_all(&dir).expect("remove the test cache");
    }
}
