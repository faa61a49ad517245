//! A bad config file ends start-up with exit code 2 and a message naming the file, the field
//! and what is wrong; what a node logs on the way is plain text when read from a pipe.

use std::process::Command;

const GOOD: &str = "\
node: {id: 1, dataDir: '/tmp/unused-{id}'}
raft:
  clusterSecret: 'plaintext:0123456789abcdef'
  peers:
    - {id: 1, raftAddr: '127.0.0.1:7001', apiAddr: '127.0.0.1:8001'}
    - {id: 2, raftAddr: '127.0.0.1:7002', apiAddr: '127.0.0.1:8002'}
sparkClusters:
  - {id: clustera, weight: 50, masterUrl: 'https://k8s-a.example', sparkApplicationNamespace: spark}
queues: [{name: dev}]
";

/// Runs `bpg check-config` on `text`; returns (exit code, stderr, file path).
fn check(text: &str) -> (i32, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bpg.yaml");
    std::fs::write(&path, text).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_bpg")).arg("check-config").arg("--config").arg(&path).output().unwrap();
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stderr).into_owned(), path.display().to_string())
}

fn assert_refused(text: &str, field: &str, problem: &str) {
    let (code, stderr, path) = check(text);
    assert_eq!(code, 2, "exit code for a bad config; stderr: {stderr}");
    assert!(stderr.contains(&path), "message names the file: {stderr}");
    assert!(stderr.contains(field), "message names {field:?}: {stderr}");
    assert!(stderr.contains(problem), "message says {problem:?}: {stderr}");
}

#[test]
fn a_good_config_is_accepted() {
    let (code, stderr, _) = check(GOOD);
    assert_eq!(code, 0, "{stderr}");
}

#[test]
fn a_missing_file_is_named() {
    let out = Command::new(env!("CARGO_BIN_EXE_bpg"))
        .args(["check-config", "--config", "/nonexistent/bpg.yaml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/bpg.yaml"));
}

#[test]
fn unknown_fields_are_refused_with_their_line() {
    assert_refused(&GOOD.replace("weight: 50", "wieght: 50"), "wieght", "unknown field");
}

#[test]
fn a_runtime_without_threads_is_refused() {
    let threads = |n: &str| {
        GOOD.replace("dataDir: '/tmp/unused-{id}'", &format!("dataDir: '/tmp/unused-{{id}}', workerThreads: {n}"))
    };
    assert_refused(&threads("0"), "node.workerThreads", "must be 1 to 1024, got 0");
    assert_eq!(check(&threads("1")).0, 0, "one thread is a valid runtime");
}

#[test]
fn wrong_types_are_refused() {
    assert_refused(&GOOD.replace("weight: 50", "weight: fifty"), "weight: fifty", "invalid");
}

#[test]
fn a_cluster_id_with_a_dash_is_refused() {
    assert_refused(&GOOD.replace("id: clustera", "id: spark-cluster-a"), "sparkClusters[0].id", "contains '-'");
}

#[test]
fn duplicate_cluster_ids_are_refused() {
    let text = GOOD.replace(
        "queues: [{name: dev}]",
        "  - {id: clustera, weight: 5, masterUrl: 'https://k8s-b.example', sparkApplicationNamespace: spark}\nqueues: [{name: dev}]",
    );
    assert_refused(&text, "sparkClusters[1].id", "listed twice");
}

#[test]
fn a_node_outside_the_peers_is_refused() {
    assert_refused(&GOOD.replace("node: {id: 1,", "node: {id: 9,"), "node.id", "not in raft.peers");
}

#[test]
fn inverted_election_timeouts_are_refused() {
    let text = GOOD.replace("raft:\n", "raft:\n  electionTimeoutMinMillis: 900\n  electionTimeoutMaxMillis: 300\n");
    assert_refused(&text, "raft.electionTimeoutMinMillis", "less than");
}

#[test]
fn a_minimum_entry_interval_over_100_ms_is_refused() {
    let text = GOOD.replace("raft:\n", "raft:\n  minEntryIntervalMicros: 100001\n");
    assert_refused(&text, "raft.minEntryIntervalMicros", "at most 100000");
    let (code, stderr, _) = check(&GOOD.replace("raft:\n", "raft:\n  minEntryIntervalMicros: 100000\n"));
    assert_eq!(code, 0, "100 ms is accepted: {stderr}");
}

#[test]
fn an_unset_secret_variable_is_named() {
    let text = GOOD.replace("'plaintext:0123456789abcdef'", "'localhost:env:BPG_TEST_UNSET_SECRET'");
    assert_refused(&text, "raft.clusterSecret", "BPG_TEST_UNSET_SECRET");
}

#[test]
fn a_short_secret_is_refused() {
    assert_refused(&GOOD.replace("0123456789abcdef", "short"), "raft.clusterSecret", "at least 16");
}

#[test]
fn the_same_address_twice_is_refused() {
    assert_refused(&GOOD.replace("127.0.0.1:8002", "127.0.0.1:8001"), "raft.peers[1]", "used twice");
}

#[test]
fn existing_bpg_config_keys_are_accepted() {
    let text = format!(
        "{GOOD}statusCacheExpireMillis: 990\ndbStorageSOPS: {{connectionString: 'jdbc:mysql://db/bpg', user: bpg}}\n\
         server: {{applicationConnectors: [{{type: http, port: 8080}}]}}\nmemoryMbSecondCost: 0.1\n"
    );
    let (code, stderr, _) = check(&text);
    assert_eq!(code, 0, "{stderr}");
}

#[test]
fn a_url_that_is_not_http_is_refused() {
    assert_refused(
        &GOOD.replace("'https://k8s-a.example'", "'k8s-a.example'"),
        "sparkClusters[0].masterUrl",
        "http://",
    );
}

#[test]
fn ca_data_that_is_not_a_certificate_is_refused() {
    let text = GOOD.replace(
        "sparkApplicationNamespace: spark}",
        "sparkApplicationNamespace: spark, caCertDataSOPS: 'plaintext:bm90IGEgY2VydA=='}",
    );
    assert_refused(&text, "sparkClusters[0].caCertDataSOPS", "no PEM certificate");
}

#[test]
fn kubernetes_secret_indirections_are_refused_with_the_alternative() {
    let text = GOOD.replace(
        "sparkApplicationNamespace: spark}",
        "sparkApplicationNamespace: spark, userTokenSOPS: 'k8s:secret::bpg:token'}",
    );
    assert_refused(&text, "sparkClusters[0].userTokenSOPS", "file:/path");
}

#[test]
fn a_secure_queue_needs_token_secrets() {
    assert_refused(
        &GOOD.replace("queues: [{name: dev}]", "queues: [{name: dev, secure: true}]"),
        "queueTokenSOPS.secrets",
        "secure",
    );
}

#[test]
fn a_queue_listed_twice_is_refused() {
    assert_refused(
        &GOOD.replace("queues: [{name: dev}]", "queues: [{name: dev}, {name: DEV}]"),
        "queues[1].name",
        "listed twice",
    );
}

/// A node's log read from a file or a pipe, as `kubectl logs` and log shippers read it, is
/// plain text: no terminal colour codes around the level and the fields.
#[test]
fn logs_to_a_pipe_carry_no_colour_codes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bpg.yaml");
    // A data directory that cannot be created: the node logs its start and fails at once.
    std::fs::write(&path, GOOD.replace("'/tmp/unused-{id}'", "'/proc/bpg-cannot-create-{id}'")).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_bpg"))
        .args(["serve", "--config"])
        .arg(&path)
        .env_remove("NO_COLOR")
        .env("RUST_LOG", "info")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(0), "the store cannot be opened: {stderr}");
    assert!(stderr.contains("starting bpg node") && stderr.contains("INFO"), "the start is logged: {stderr}");
    assert!(stderr.contains("ERROR"), "and so is the failure: {stderr}");
    assert!(!stderr.contains('\u{1b}'), "no escape sequences: {stderr:?}");
}
