//! The `bpg` binary; everything is in the `bpg_node` library.

// glibc's allocator kept freed memory in per-thread arenas: at 100,000 jobs a node's resident
// memory was 40–45 % memory it had freed (`malloc_trim` on running nodes gave it back:
// 253 → 142, 151 → 93, 129 → 75 MiB). mimalloc returns freed pages to the system.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    bpg_node::main()
}
