//! The `kubesim` program, built in this package for the end-to-end tests.

fn main() -> std::process::ExitCode {
    kubesim::main()
}
