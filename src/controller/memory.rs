//! Giving freed memory back to the system. A full run or a tree load
//! allocates a lot for a short while (the live objects of every kind, the
//! rendered tree twice); glibc's allocator keeps what was freed in its
//! per-thread arenas, so without this the controller's resident size stays
//! at the peak of its busiest run, not at what it holds. Called after each
//! pass of the controller loop; a no-op on other allocators.
//!
//! glibc also gives each thread that allocates its own arena (up to 8 per
//! core): the tokio workers and the blocking pool's render threads each
//! keep a partly used heap that `malloc_trim` cannot give back while one
//! live allocation pins a page. [`limit_arenas`] caps them for the
//! long-running controller (measured: 1,000 apps' steady-state RSS fell
//! by about a third; see the `memory` notes).

/// Returns the allocator's free memory to the system (glibc `malloc_trim`).
pub fn release_free_memory() {
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
