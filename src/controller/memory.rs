//! Giving freed memory back to the system. A full run or a tree load
//! allocates a lot for a short while (the live objects of every kind, the
//! rendered tree twice); glibc's allocator keeps what was freed in its
//! per-thread arenas, so without this the controller's resident size stays
//! at the peak of its busiest run, not at what it holds. Called after each
//! pass of the controller loop; a no-op on other allocators.

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
