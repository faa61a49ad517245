//! The `bpg` program, built in this package for the end-to-end tests: the same `main` and
//! the same allocator as the `bpg` binary.

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    bpg_node::main()
}
