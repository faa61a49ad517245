//! The `kubesim` binary; everything is in the library.

// kubesim copies and frees large JSON trees for every change it stores and serves; glibc's
// allocator spent about 40 % of its CPU there, mimalloc a fraction of it.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    kubesim::main()
}
