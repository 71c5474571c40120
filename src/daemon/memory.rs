//! Handing back to the system the memory a pass held.
//!
//! A pass decodes every listing and loads every account's services; when it
//! ends, glibc's allocator keeps the freed pages in its arenas for reuse, so the
//! idle daemon would stay at the pass's peak until the next pass (measured: 90 MB
//! resident after a 1,000-account pass, 56 MB after releasing). Asking the
//! allocator to trim after each pass (scheduled or asked for through the API)
//! costs a few milliseconds once per pass.

/// Returns freed heap pages of every allocator arena to the kernel.
pub(super) fn release_freed() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks glibc's own arenas under their locks; it
    // takes no pointer from the caller and is safe to call from any thread.
    unsafe {
        libc::malloc_trim(0);
    }
}
