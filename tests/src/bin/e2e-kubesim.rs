//! The `kubesim` program, built in this package for the end-to-end tests: the same `main` and
//! the same allocator as the `kubesim` binary.

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    kubesim::main()
}
