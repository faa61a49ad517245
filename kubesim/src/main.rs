//! The `kubesim` binary; everything is in the library.

fn main() -> std::process::ExitCode {
    kubesim::main()
}
