//! The deployment files are valid: every Kubernetes manifest passes `kubernetes-validate
//! --strict` offline (installed by this test into a venv under the target directory), and the
//! gateway configs they carry pass `bpg check-config` for initial and scaled-up nodes.

use std::path::{Path, PathBuf};
use std::process::Command;

const KUBERNETES_VALIDATE: &str = "kubernetes-validate==1.37.0";
/// The oldest Kubernetes the manifests target (EKS standard support).
const KUBERNETES_VERSION: &str = "1.33.0";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

fn validator() -> PathBuf {
    let venv = Path::new(env!("CARGO_TARGET_TMPDIR")).join("pyenv-kubernetes-validate");
    let marker = venv.join(format!("installed-{KUBERNETES_VALIDATE}"));
    if !marker.exists() {
        let made = Command::new("python3").args(["-m", "venv"]).arg(&venv).status();
        assert!(made.is_ok_and(|s| s.success()), "python3 -m venv failed: this test needs Python 3 with venv");
        let pip =
            Command::new(venv.join("bin/python")).args(["-m", "pip", "install", "-q", KUBERNETES_VALIDATE]).status();
        assert!(pip.is_ok_and(|s| s.success()), "pip install {KUBERNETES_VALIDATE} failed (PyPI must be reachable)");
        std::fs::write(&marker, "").unwrap();
    }
    venv.join("bin/kubernetes-validate")
}

fn manifests() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(repo().join("deploy/kubernetes"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
}

#[test]
fn every_kubernetes_manifest_passes_strict_validation() {
    let files = manifests();
    assert!(files.len() >= 7, "expected the StatefulSet and its companions, found {files:?}");
    let out = Command::new(validator()).args(["--strict", "-k", KUBERNETES_VERSION]).args(&files).output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "kubernetes-validate failed:\n{text}");
    for kind in
        ["statefulset/bpg", "service/bpg-raft", "poddisruptionbudget/bpg", "configmap/bpg-config", "serviceaccount/bpg"]
    {
        assert!(text.contains(&format!("passed for resource {kind}")), "{kind} was not validated:\n{text}");
    }
    assert!(!text.contains("Couldn't find schema"), "every resource has a schema:\n{text}");
}

/// Runs `bpg check-config` on `config` for `node`, with `env`.
fn check(config: &Path, node: u64, env: &[(&str, &str)]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_e2e-bpg"))
        .args(["check-config", "--config"])
        .arg(config)
        .args(["--node-id", &node.to_string()])
        .envs(env.iter().copied())
        .output()
        .unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn the_configmap_config_is_valid_for_initial_and_added_nodes() {
    let text = std::fs::read_to_string(repo().join("deploy/kubernetes/configmap.yaml")).unwrap();
    let cm: serde_json::Value = serde_saphyr::from_str(&text).unwrap();
    let config = cm["data"]["bpg.yaml"].as_str().expect("data.bpg.yaml").to_owned();
    // Stand-ins for the Secrets mounted in the pod.
    let dir = tempfile::tempdir().unwrap();
    let secrets = dir.path().join("secrets");
    let clusters = dir.path().join("clusters");
    std::fs::create_dir_all(&secrets).unwrap();
    std::fs::create_dir_all(&clusters).unwrap();
    std::fs::write(secrets.join("cluster-secret"), "0123456789abcdef0123456789abcdef").unwrap();
    let ca = kubesim::Tls::self_signed(&["k8s.example".into()]).unwrap().cert_pem;
    for c in ["clustera", "clusterb"] {
        std::fs::write(clusters.join(format!("{c}-token")), "token").unwrap();
        std::fs::write(clusters.join(format!("{c}-ca.crt")), &ca).unwrap();
    }
    let config = config
        .replace("/etc/bpg/secrets", secrets.to_str().unwrap())
        .replace("/var/run/secrets/bpg/clusters", clusters.to_str().unwrap());
    let path = dir.path().join("bpg.yaml");
    std::fs::write(&path, config).unwrap();
    for node in [0, 2, 3, 4] {
        let (ok, stderr) = check(&path, node, &[]);
        assert!(ok, "node {node}: {stderr}");
    }
}

#[test]
fn the_compose_config_is_valid_for_each_node() {
    let path = repo().join("deploy/compose/bpg.yaml");
    let env = [("BPG_CLUSTER_SECRET", "compose-demo-cluster-secret"), ("KUBESIM_TOKEN", "t")];
    for node in 0..3 {
        let (ok, stderr) = check(&path, node, &env);
        assert!(ok, "gw{node}: {stderr}");
    }
}
