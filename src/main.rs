fn main() -> std::process::ExitCode {
    use kubesync::render::jsonnet_limit;
    // A jsonnet evaluator child of a kubesync process (render::jsonnet_limit).
    if let Some(request) = std::env::var_os(jsonnet_limit::CHILD_ENV) {
        return jsonnet_limit::child_main(&request);
    }
    jsonnet_limit::running_as_kubesync_binary();
    kubesync::cli::main()
}
