// The binary's allocator: jemalloc, which gives freed memory back to the
// system in the background (see `kubesync::controller::memory`). Tests and
// other users of the library keep the system allocator.
#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's settings, read when it starts (`_RJEM_MALLOC_CONF` in the
/// environment overrides them): a background thread purges freed pages,
/// dirty pages go back to the system after 1 s instead of 10 s, and no
/// "muzzy" stage keeps them mapped longer.
#[cfg(not(target_env = "msvc"))]
#[allow(non_upper_case_globals)]
#[export_name = "_rjem_malloc_conf"]
pub static malloc_conf: &[u8; 60] =
    b"background_thread:true,dirty_decay_ms:1000,muzzy_decay_ms:0\0";

fn main() -> std::process::ExitCode {
    use kubesync::render::jsonnet_limit;
    // A jsonnet evaluator child of a kubesync process (render::jsonnet_limit).
    if let Some(request) = std::env::var_os(jsonnet_limit::CHILD_ENV) {
        return jsonnet_limit::child_main(&request);
    }
    jsonnet_limit::running_as_kubesync_binary();
    kubesync::cli::main()
}
