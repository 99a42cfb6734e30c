//! What a syscall fault asks for (`SyscallSpec`, built by `SyscallFaultSpec::into_spec`), and
//! the checks that need nothing but the spec and the catalogue: every input error that can be
//! named without looking at the system is found here.

use super::{Entry, Filters, SockProtocol, catalogue};
use crate::{
    controls::Controls,
    error::{Error, Result},
    guards,
    target::Target,
    units::Percent,
};
use chaos_common::PortRange;
use ipnet::IpNet;
use std::{path::PathBuf, time::Duration};

/// What the user asked for, with the defaults applied (`SyscallFaultSpec::into_spec`).
#[derive(Debug, Clone)]
pub struct SyscallSpec {
    /// Catalogue name or alias.
    pub name: String,
    /// Name or number; None for a crash fault.
    pub errno: Option<String>,
    /// Crash faults: the signal sent at the call, by name or number.
    pub signal: Option<String>,
    pub dst: Option<IpNet>,
    pub dport: Option<PortRange>,
    pub protocol: Option<SockProtocol>,
    pub paths: Vec<PathBuf>,
    pub all_files: bool,
    pub port: Option<PortRange>,
    pub comm: Option<String>,
    pub percent: Percent,
    pub target: Target,
    pub duration: Duration,
    pub controls: Controls,
}

impl SyscallSpec {
    /// The catalogue entry and the errno; errors name the flag (`NAME`, `--errno`, a filter the
    /// syscall cannot use, `--percent`, `--duration`).
    pub fn check(&self) -> Result<(&'static Entry, i32)> {
        let entry = catalogue::find(&self.name).ok_or_else(|| {
            // A call only a crash fault takes (fsync, fdatasync) is known, just not with --errno.
            if super::crash::find(&self.name).is_some() {
                return Error::input(
                    "--errno",
                    format!(
                        "{}() takes --signal SIG only (a crash at the call); --errno takes one \
                         of {} (chaos syscall --list)",
                        self.name,
                        catalogue::names()
                    ),
                );
            }
            Error::input(
                "NAME",
                format!(
                    "unknown syscall '{}'; use one of {} (chaos syscall --list)",
                    self.name,
                    catalogue::names()
                ),
            )
        })?;
        let errno = self.errno.as_deref().ok_or_else(|| {
            Error::input(
                "--errno",
                format!(
                    "say what {}() gets: --errno NAME fails it (see chaos syscall list), \
                     --signal SIG kills the process at it",
                    entry.name
                ),
            )
        })?;
        let errno = crate::errno::parse(errno, entry.errnos)
            .map_err(|m| Error::input("--errno", format!("{m} (for {})", entry.name)))?;
        self.check_filters(entry)?;
        crate::units::check_injects(self.percent, "--percent")?;
        guards::check_duration(self.duration, self.controls.force)?;
        Ok((entry, errno))
    }

    /// A filter the syscall has no use for is refused, not ignored.
    fn check_filters(&self, e: &Entry) -> Result<()> {
        let refuse = |flag: &'static str, what: &str| {
            Err(Error::input(
                flag,
                format!(
                    "{} faults cannot filter by {what}; {}",
                    e.name,
                    filters_hint(e)
                ),
            ))
        };
        let address = matches!(e.filters, Filters::Address);
        let path = matches!(e.filters, Filters::Path { .. });
        if !address && self.dst.is_some() {
            return refuse("--dst", "destination address");
        }
        if !address && self.dport.is_some() {
            return refuse("--dport", "destination port");
        }
        if !address && self.protocol.is_some() {
            return refuse("--protocol", "protocol");
        }
        if !path && !self.paths.is_empty() {
            return refuse("--path", "path");
        }
        if !matches!(e.filters, Filters::Path { rw: true }) && self.all_files {
            return refuse("--all-files", "file type");
        }
        if !matches!(e.filters, Filters::LocalPort) && self.port.is_some() {
            return refuse("--port", "local port");
        }
        if e.name == "sendmsg" && self.protocol == Some(SockProtocol::Tcp) {
            return Err(Error::input(
                "--protocol",
                "sendmsg faults apply to UDP datagrams sent with an address; use --protocol udp \
                 or leave it out (fail TCP with connect faults or net drop)",
            ));
        }
        if self.paths.len() > chaos_common::syscall::MAX_PATHS {
            return Err(Error::input(
                "--path",
                format!(
                    "at most {} paths per fault",
                    chaos_common::syscall::MAX_PATHS
                ),
            ));
        }
        Ok(())
    }
}

fn filters_hint(e: &Entry) -> &'static str {
    match e.filters {
        Filters::Address => "it takes --dst, --dport and --protocol",
        Filters::Path { rw: true } => "it takes --path and --all-files",
        Filters::Path { rw: false } => "it takes --path",
        Filters::LocalPort => "it takes --port",
        Filters::None => "it takes only the scope (--cgroup/--pid, --comm)",
    }
}
