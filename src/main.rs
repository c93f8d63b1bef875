fn main() -> std::process::ExitCode {
    // A jsonnet evaluator child of a kubesync process (render::jsonnet_limit).
    if let Some(request) = std::env::var_os(kubesync::render::jsonnet_limit::CHILD_ENV) {
        return kubesync::render::jsonnet_limit::child_main(&request);
    }
    kubesync::cli::main()
}
