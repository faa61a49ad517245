//! A bad command line ends kubesim at once with exit code 2 and a message naming the option.

use std::process::Command;

fn refused(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_kubesim"))
        .args(["--listen", "127.0.0.1:0"])
        .args(args)
        .output()
        .expect("kubesim runs");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(2), "exit code for {args:?}; stderr: {stderr}");
    stderr
}

#[test]
fn zero_threads_are_refused_by_name() {
    let stderr = refused(&["--threads", "0"]);
    assert!(stderr.contains("--threads"), "names the option: {stderr}");
    assert!(stderr.contains("not in 1.."), "says what is allowed: {stderr}");
}

#[test]
fn a_non_numeric_thread_count_is_refused_by_name() {
    let stderr = refused(&["--threads", "many"]);
    assert!(stderr.contains("--threads") && stderr.contains("many"), "names the option and the value: {stderr}");
}
