//! The process's allocator settings.

/// Large allocations come from `mmap` and go back to the system when freed.
///
/// glibc raises its mmap threshold each time a large mmapped block is freed (up to
/// 32 MiB), after which blocks of that size come from per-thread arenas and are kept when
/// freed. Each login's argon2 hash allocates 19 MiB on a blocking thread, so without this
/// a login flood left the process at 1.2 to 1.6 GiB (`scripts/bench-logins.sh`); with
/// the threshold fixed, the peak is the bounded hashes at once (8 × 19 MiB) and the
/// memory is returned after.
pub fn return_large_blocks_to_the_system() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        const THRESHOLD: nix::libc::c_int = 1 << 20;
        // SAFETY: mallopt only changes glibc's allocator parameters; it is called once,
        // before the runtime allocates from other threads.
        let _ = unsafe { nix::libc::mallopt(nix::libc::M_MMAP_THRESHOLD, THRESHOLD) };
    }
}
