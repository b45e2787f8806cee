//! Settings of the server process itself, made in `main` before the runtime starts.

/// Large allocations come from `mmap` and go back to the system when freed.
///
/// glibc raises its mmap threshold each time a large mmapped block is freed (up to
/// 32 MiB), after which blocks of that size come from per-thread arenas and are kept when
/// freed. Each login's argon2 hash allocates 19 MiB on a blocking thread, so without this
/// a login flood left the process at 1.2 to 1.6 GiB (`scripts/bench-logins.sh`); with
/// the threshold fixed, the peak is the bounded hashes at once (8 × 19 MiB) and the
/// memory is returned after.
///
/// The allocator is glibc's: mimalloc took 5–12 % less CPU per pass-through call, within
/// the noise between runs, and held 10,000 waiters in 348 MiB instead of 260 MiB
/// (docs/BENCHMARKS.md, issue 16).
pub fn return_large_blocks_to_the_system() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        const THRESHOLD: nix::libc::c_int = 1 << 20;
        // SAFETY: mallopt only changes glibc's allocator parameters; it is called once,
        // before the runtime allocates from other threads.
        let _ = unsafe { nix::libc::mallopt(nix::libc::M_MMAP_THRESHOLD, THRESHOLD) };
    }
}

/// Other processes of the same user may not read this one's memory or `/proc/<pid>/environ`
/// (which holds `DATABASE_URL`, the JWT secret and the admin password as given): a stdio
/// upstream runs as the gateway's user, and must not be able to take them.
/// Raises the soft limit on open files to the hard one (as Go's runtime and nginx's
/// `worker_rlimit_nofile` do): every parked call is an open socket, and the default soft
/// limit (1,024 on most systems) would cap a replica at about a thousand waiters while
/// the operator's `LimitNOFILE`/`ulimit -Hn` allows far more. The server's connection
/// cap is derived from the result ([`crate::http::server`]).
pub fn raise_open_files_limit() {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
        if soft < hard {
            let _ = setrlimit(Resource::RLIMIT_NOFILE, hard, hard);
        }
    }
}

pub fn refuse_inspection() {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: PR_SET_DUMPABLE with 0 only changes this process's dumpable flag.
        let done = unsafe { nix::libc::prctl(nix::libc::PR_SET_DUMPABLE, 0, 0, 0, 0) };
        if done != 0 {
            eprintln!("warning: cannot make the process non-dumpable; same-user processes may read its secrets");
        }
    }
}
