//! How the daemon asks glibc's allocator to keep its memory close to what is live.
//!
//! The engine allocates many short-lived multi-MiB buffers (fetched source runs, converted
//! chunks) on whichever thread happens to run the task. glibc gives each thread that contends
//! its own arena, up to 8 per core, and an arena keeps the memory it once held: measured on a
//! 2-core machine copying a 1 GB file with a 64 MiB memory cache, peak RSS was ~440 MiB with
//! the default, ~300-330 MiB with two arenas and ~250-290 MiB with one, at the same speed (the
//! buffers are few and large, so threads rarely wait on the single arena's lock). A fixed mmap threshold instead
//! (every large buffer a fresh mapping) bounds RSS best but costs a page fault per 4 KiB
//! served, which made the same copy ~1.5 s slower. Elsewhere than glibc these are no-ops.

/// Caps the number of malloc arenas; call once, before the engine's threads start.
pub fn limit_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator parameters; called before other threads exist.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, ARENAS);
    }
}

/// Returns freed heap memory to the system; worth calling after a burst of transient
/// allocations (building a repo's layouts parses whole vocabularies).
pub fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim is thread-safe and only releases memory the allocator holds free.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Arenas: one (see the module comment).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const ARENAS: libc::c_int = 1;
