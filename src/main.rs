fn main() -> std::process::ExitCode {
    kubesync::cli::main()
}
