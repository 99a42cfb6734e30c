//! Kernel programs of `chaos`. Entry points are thin; each fault family lives in its own folder,
//! named as in chaos-user (`net/`, `syscall/`), over the core they share (`verdict`, `scope`).
//! Every program fails open: no config, an expired deadline or an unparsable packet means
//! "do nothing".
#![no_std]
#![no_main]

mod features;
mod net;
mod probe;
mod scope;
mod syscall;
mod verdict;

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

// bpf_set_retval and the cgroup helpers are GPL-only.
#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
