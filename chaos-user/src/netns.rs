//! Network namespaces: resolving `--netns` and running work inside one on the current thread.

use crate::error::{Error, Result};
use std::{
    fs::File,
    os::fd::{AsRawFd, RawFd},
    path::{Path, PathBuf},
};

/// A network namespace, held open so that it cannot vanish under us.
#[derive(Debug)]
pub struct Netns {
    pub path: PathBuf,
    file: File,
}

impl Netns {
    /// `NAME` (under /run/netns, as `ip netns add` makes) or a path such as /proc/PID/ns/net.
    pub fn resolve(arg: &str) -> Result<Self> {
        let path = if arg.contains('/') {
            PathBuf::from(arg)
        } else {
            Path::new("/run/netns").join(arg)
        };
        let file = File::open(&path).map_err(|_| {
            Error::input(
                "--netns",
                format!(
                    "network namespace '{arg}' not found at {}; give a name from `ip netns list` \
                     or a path such as /proc/PID/ns/net",
                    path.display()
                ),
            )
        })?;
        // SAFETY: plain ioctl on an fd we own; NS_GET_NSTYPE returns the namespace type.
        let kind = unsafe { libc::ioctl(file.as_raw_fd(), NS_GET_NSTYPE) };
        if kind != libc::CLONE_NEWNET {
            return Err(Error::input(
                "--netns",
                format!("{} is not a network namespace", path.display()),
            ));
        }
        Ok(Self { path, file })
    }

    /// The path and nsfs inode that state records keep, so a later cleanup can tell that a path
    /// still names the same namespace.
    pub fn identity(ns: Option<&Netns>) -> (Option<PathBuf>, Option<u64>) {
        use std::os::unix::fs::MetadataExt;
        let path = ns.map(|n| n.path.clone());
        let ino = path
            .as_ref()
            .and_then(|p| std::fs::metadata(p).ok())
            .map(|m| m.ino());
        (path, ino)
    }

    pub fn try_clone(&self) -> Result<Self> {
        let file = self
            .file
            .try_clone()
            .map_err(|e| Error::io("duplicating netns fd", e))?;
        Ok(Self {
            path: self.path.clone(),
            file,
        })
    }

    /// Runs `f` with the calling thread inside this namespace, then moves the thread back.
    pub fn enter<T>(&self, f: impl FnOnce() -> T) -> Result<T> {
        let _guard = ThreadNetns::enter(&self.file)?;
        Ok(f())
    }
}

/// Runs `f` inside `netns`, or right here when it is `None`.
pub fn within<T>(netns: Option<&Netns>, f: impl FnOnce() -> T) -> Result<T> {
    match netns {
        Some(ns) => ns.enter(f),
        None => Ok(f()),
    }
}

impl AsRawFd for Netns {
    fn as_raw_fd(&self) -> RawFd {
        self.file.as_raw_fd()
    }
}

// _IO(0xb7, 0x3) from linux/nsfs.h
const NS_GET_NSTYPE: libc::c_ulong = 0xb703;

/// Moves the current thread into a netns and back on drop.
struct ThreadNetns {
    original: File,
}

impl ThreadNetns {
    fn enter(target: &File) -> Result<Self> {
        let original = File::open("/proc/thread-self/ns/net")
            .map_err(|e| Error::io("opening /proc/thread-self/ns/net", e))?;
        setns(target).map_err(|e| Error::io("entering network namespace", e))?;
        Ok(Self { original })
    }
}

impl Drop for ThreadNetns {
    fn drop(&mut self) {
        if let Err(e) = setns(&self.original) {
            // Continuing in the wrong namespace would attach or detach in the wrong place.
            panic!("cannot return to the original network namespace: {e}");
        }
    }
}

fn setns(ns: &File) -> std::io::Result<()> {
    // SAFETY: setns on a namespace fd we hold; affects only the calling thread.
    if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// The interface index of `name` in the current thread's namespace.
pub fn ifindex(name: &str) -> Option<u32> {
    let c = std::ffi::CString::new(name).ok()?;
    // SAFETY: c is a valid NUL-terminated string.
    let idx = unsafe { libc::if_nametoindex(c.as_ptr()) };
    (idx != 0).then_some(idx)
}

/// The interfaces of the current thread's namespace but `lo`, in index order.
pub fn interfaces() -> Vec<String> {
    let mut out = Vec::new();
    // SAFETY: if_nameindex returns an array ended by a zero entry, freed below.
    unsafe {
        let list = libc::if_nameindex();
        if list.is_null() {
            return out;
        }
        let mut i = list;
        while (*i).if_index != 0 {
            let name = std::ffi::CStr::from_ptr((*i).if_name)
                .to_string_lossy()
                .into_owned();
            if name != "lo" {
                out.push(name);
            }
            i = i.add(1);
        }
        libc::if_freenameindex(list);
    }
    out
}

/// The interfaces but `lo` of the network namespace at `path` (`/proc/PID/ns/net`): a pod's
/// own interface is found this way, not by the name eth0.
pub fn interfaces_in(path: &std::path::Path) -> Result<Vec<String>> {
    Netns::resolve(&path.to_string_lossy())?.enter(interfaces)
}
