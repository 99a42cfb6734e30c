//! The audit stream: events from the kernel's ring buffer, written as JSON lines.

use crate::{
    ebpf, errno,
    error::{Error, Result},
};
use aya::{
    Ebpf,
    maps::{MapData, RingBuf},
};
use chaos_common::{
    EVENT_CONNECT, EVENT_CRASH, EVENT_PACKET, Event, filter::FAMILY_V4, maps::EVENTS,
};
use serde::Serialize;
use std::{
    fs::File,
    io::{BufWriter, Write},
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    path::Path,
};
use tokio::io::{Interest, unix::AsyncFd};

pub struct EventSink {
    ring: AsyncFd<RingBuf<MapData>>,
    out: BufWriter<File>,
    /// Converts bpf_ktime_get_ns (monotonic) to Unix time.
    realtime_offset_ns: i128,
    pub written: u64,
}

/// One event as written to the file.
#[derive(Debug, Serialize)]
struct Record {
    time_unix_ns: i128,
    fault_id: String,
    kind: &'static str,
    /// Syscall faults: which catalogue entry.
    #[serde(skip_serializing_if = "Option::is_none")]
    syscall: Option<&'static str>,
    dry_run: bool,
    pid: u32,
    comm: String,
    cgroup_id: u64,
    protocol: u8,
    #[serde(skip_serializing_if = "Option::is_none")]
    src: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    dst: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sport: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    dport: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    errno: Option<&'static str>,
    /// Crash faults: the signal sent at the call.
    #[serde(skip_serializing_if = "Option::is_none")]
    signal: Option<&'static str>,
}

fn addr(family: u8, w: &[u32; 4]) -> IpAddr {
    let b = |i: usize| w[i].to_ne_bytes();
    if family == FAMILY_V4 {
        IpAddr::V4(Ipv4Addr::from(b(0)))
    } else {
        let mut o = [0u8; 16];
        for i in 0..4 {
            o[4 * i..4 * i + 4].copy_from_slice(&b(i));
        }
        IpAddr::V6(Ipv6Addr::from(o))
    }
}

fn record(e: &Event, offset: i128) -> Record {
    // Syscall events (connect and the rest) carry an errno and, for socket calls, an address.
    let packet = e.kind == EVENT_PACKET;
    let connect = e.kind == EVENT_CONNECT;
    let crash = e.kind == EVENT_CRASH;
    let has_addr = e.family != 0;
    let comm_len = e.comm.iter().position(|&c| c == 0).unwrap_or(e.comm.len());
    Record {
        time_unix_ns: e.ts_ns as i128 + offset,
        fault_id: format!("{:08x}", e.fault_id),
        kind: match (packet, connect, crash) {
            (true, ..) => "packet",
            (_, true, _) => "connect",
            (.., true) => "crash",
            _ => "syscall",
        },
        syscall: (!packet)
            .then(|| chaos_common::syscall::op_name(e.action))
            .flatten(),
        dry_run: e.dry_run != 0,
        pid: e.pid,
        comm: String::from_utf8_lossy(&e.comm[..comm_len]).into_owned(),
        cgroup_id: e.cgroup_id,
        protocol: e.protocol,
        src: packet.then(|| addr(e.family, &e.src).to_string()),
        dst: has_addr.then(|| addr(e.family, &e.dst).to_string()),
        sport: packet.then_some(e.sport),
        dport: has_addr.then_some(e.dport),
        errno: (!packet && !crash).then(|| errno::name(e.errno as i32)),
        signal: crash.then(|| crate::signal::name(e.errno as i32)),
    }
}

impl EventSink {
    /// The ring buffer map's fd (programs loaded outside aya must be relocated against it).
    pub fn map_fd(&self) -> std::os::fd::RawFd {
        use std::os::fd::AsRawFd;
        self.ring.get_ref().as_raw_fd()
    }

    /// Takes the ring buffer out of `ebpf` and opens `path` for writing.
    pub fn new(ebpf: &mut Ebpf, path: &Path) -> Result<Self> {
        let map = ebpf.take_map(EVENTS).ok_or(Error::MapNotFound(EVENTS))?;
        let ring = RingBuf::try_from(map).map_err(|e| Error::map("opening the event ring", e))?;
        // SAFETY: the RingBuf owns its map fd and keeps it open, unchanged, until it is dropped,
        // which happens only when this AsyncFd is.
        let ring =
            unsafe { AsyncFd::register_with_interest(ring, Interest::READABLE) }.map_err(|e| {
                Error::io(
                    "polling the event ring",
                    std::io::Error::other(e.to_string()),
                )
            })?;
        let file = File::create(path).map_err(|e| {
            Error::input("--events", format!("cannot create {}: {e}", path.display()))
        })?;
        let now_real = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as i128);
        let realtime_offset_ns = now_real - ebpf::monotonic_ns() as i128;
        Ok(Self {
            ring,
            out: BufWriter::new(file),
            realtime_offset_ns,
            written: 0,
        })
    }

    /// Writes events as they arrive; never returns unless polling fails.
    pub async fn pump(&mut self) -> Result<()> {
        loop {
            let mut guard = self
                .ring
                .readable_mut()
                .await
                .map_err(|e| Error::io("polling the event ring", e))?;
            guard.clear_ready();
            drain(
                guard.get_inner_mut(),
                &mut self.out,
                self.realtime_offset_ns,
                &mut self.written,
            )?;
        }
    }

    /// Writes what is left and flushes (after the fault is detached).
    pub fn finish(mut self) -> Result<u64> {
        drain(
            self.ring.get_mut(),
            &mut self.out,
            self.realtime_offset_ns,
            &mut self.written,
        )?;
        self.out
            .flush()
            .map_err(|e| Error::io("writing events", e))?;
        Ok(self.written)
    }
}

fn drain(
    ring: &mut RingBuf<MapData>,
    out: &mut BufWriter<File>,
    offset: i128,
    written: &mut u64,
) -> Result<()> {
    while let Some(item) = ring.next() {
        if item.len() < size_of::<Event>() {
            continue;
        }
        // SAFETY: the kernel wrote a whole Event (checked length); read_unaligned copes with the
        // ring's 8-byte alignment.
        let e: Event = unsafe { std::ptr::read_unaligned(item.as_ptr().cast()) };
        let line = serde_json::to_string(&record(&e, offset))
            .map_err(|e| Error::io("encoding an event", e.into()))?;
        writeln!(out, "{line}").map_err(|e| Error::io("writing events", e))?;
        *written += 1;
    }
    out.flush().map_err(|e| Error::io("writing events", e))
}
