//! Which optional parts of the packet programs this load keeps (`chaos_common::features`).

/// Written by userspace when it loads the object; the object's own value keeps every part.
#[unsafe(no_mangle)]
static CHAOS_FEATURES: u32 = chaos_common::features::ALL;

/// How many rule slots the classifier walks (`features::slots_of`): a constant to the
/// verifier, which then walks no slot beyond.
#[inline(always)]
pub fn slots() -> u32 {
    // SAFETY: as in `on`.
    chaos_common::features::slots_of(unsafe { core::ptr::read_volatile(&CHAOS_FEATURES) })
}

/// How many `--path` objects the file and crash programs compare (`features::paths_of`): a
/// constant to the verifier, which then walks no directory for 0 and compares no object
/// beyond.
#[inline(always)]
pub fn paths() -> u32 {
    // SAFETY: as in `on`.
    chaos_common::features::paths_of(unsafe { core::ptr::read_volatile(&CHAOS_FEATURES) })
}

/// Whether the part `bit` is loaded. Read volatile so that the compiler cannot fold in the
/// object's own value; the verifier folds the loaded one (`.rodata` is frozen) and skips the
/// branches it rules out.
#[inline(always)]
pub fn on(bit: u32) -> bool {
    // SAFETY: an aligned read of a static.
    unsafe { core::ptr::read_volatile(&CHAOS_FEATURES) & bit != 0 }
}
