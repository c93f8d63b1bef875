//! Giving freed memory back to the system. A full run or a tree load
//! allocates a lot for a short while (the live objects of every kind, the
//! rendered tree twice); glibc's allocator keeps what was freed in its
//! per-thread arenas, so with it the controller's resident size stayed at
//! the peak of its busiest run, not at what it holds (1,000 apps × 10
//! ConfigMaps, release build: 157 MB resident after the bootstrap). The
//! binary's allocator is therefore jemalloc (src/main.rs), which gives
//! pages back once freed (measured: ~100 MB); [`release_free_memory`],
//! called after each pass of the controller loop, purges them at once
//! instead of over jemalloc's decay time.
//!
//! glibc also gives each thread that allocates its own arena (up to 8 per
//! core): the tokio workers and the blocking pool's render threads each
//! keep a partly used heap that `malloc_trim` cannot give back while one
//! live allocation pins a page. [`limit_arenas`] caps them for the
//! long-running controller (measured: 1,000 apps' steady-state RSS fell
//! by about a third; see the `memory` notes).

/// Returns the allocators' free memory to the system: jemalloc's (the
/// binary's allocator, see src/main.rs: its freed pages are purged now
/// rather than over its decay time) and glibc's (`malloc_trim`: what C
/// code such as libgit2 allocates, and everything when another allocator
/// is the global one).
pub fn release_free_memory() {
    #[cfg(not(target_env = "msvc"))]
    {
        // "arena.<MALLCTL_ARENAS_ALL>.purge": every arena's unused dirty pages.
        const PURGE_ALL: &[u8] = b"arena.4096.purge\0";
        // SAFETY: a NUL-terminated control name; the purge reads and writes
        // no value (null pointers, zero length).
        let r = unsafe {
            tikv_jemalloc_sys::mallctl(
                PURGE_ALL.as_ptr().cast(),
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                0,
            )
        };
        if r != 0 {
            tracing::debug!(error = r, "jemalloc purge failed");
        }
    }
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let started = std::time::Instant::now();
        // SAFETY: malloc_trim only walks the allocator's own free lists.
        let released = unsafe { libc::malloc_trim(0) };
        tracing::debug!(took = ?started.elapsed(), released = released != 0, "free memory returned");
    }
}

/// How many glibc malloc arenas the controller uses (see the module doc).
const ARENAS: i32 = 2;

/// Caps glibc's malloc arenas at [`ARENAS`], unless `MALLOC_ARENA_MAX` is
/// set (the operator's choice wins). Call before the runtime starts its
/// threads; a no-op on other allocators.
pub fn limit_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        if std::env::var_os("MALLOC_ARENA_MAX").is_some() {
            return;
        }
        // SAFETY: mallopt only sets a tunable of the allocator; called
        // before other threads allocate.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, ARENAS);
        }
    }
}
