//! The chaos harness: runs a gateway cluster as separate processes, drives a workload, injects
//! faults and checks the recorded history. It treats the gateway as a black box over HTTP.

fn main() -> std::process::ExitCode {
    eprintln!("usage: jepsen <run|bench> [options]; no workload is defined yet");
    std::process::ExitCode::from(2)
}
