//! The `bpg` binary; everything is in the `bpg_node` library.

fn main() -> std::process::ExitCode {
    bpg_node::main()
}
