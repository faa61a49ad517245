//! Clients no one here wrote: the official Python `kubernetes` package and kubectl, against a
//! kubesim server over HTTPS with a bearer token.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use kube::api::ListParams;

/// The pinned version of the official client.
const PYTHON_KUBERNETES: &str = "kubernetes==33.1.0";

/// A Python with the official client, in a venv under the target directory (made once).
fn python() -> PathBuf {
    if let Ok(p) = std::env::var("KUBESIM_PYTHON") {
        return p.into();
    }
    let venv = Path::new(env!("CARGO_TARGET_TMPDIR")).join("pyenv-kubernetes");
    let python = venv.join("bin/python");
    let marker = venv.join(format!("installed-{PYTHON_KUBERNETES}"));
    if !marker.exists() {
        let made = Command::new("python3").args(["-m", "venv"]).arg(&venv).status();
        assert!(made.is_ok_and(|s| s.success()), "python3 -m venv failed: this test needs Python 3 with venv");
        let pip = Command::new(&python).args(["-m", "pip", "install", "-q", PYTHON_KUBERNETES]).status();
        assert!(pip.is_ok_and(|s| s.success()), "pip install {PYTHON_KUBERNETES} failed (PyPI must be reachable)");
        std::fs::write(&marker, "").unwrap();
    }
    python
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_official_python_client_works() {
    let srv = server(fast()).await;
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, srv.ca_pem.as_ref().unwrap()).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/official_client.py");
    let python = python();
    let url = srv.url();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(python)
            .arg(script)
            .env("KUBESIM_URL", url)
            .env("KUBESIM_TOKEN", TOKEN)
            .env("KUBESIM_CA", &ca)
            .output()
            .expect("runs python")
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "python client checks failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains("all checks passed"), "{stdout}");
}

fn kubectl(kubeconfig: &Path, args: &[&str]) -> (bool, String) {
    let out = Command::new("kubectl").arg("--kubeconfig").arg(kubeconfig).args(args).output().unwrap_or_else(|e| {
        panic!("kubectl could not be run ({e}); this test needs kubectl on the PATH (it ships with the machine image)")
    });
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_gets_and_deletes_spark_applications() {
    use base64::Engine;
    let srv = server(fast()).await;
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    let ca = base64::engine::general_purpose::STANDARD.encode(srv.ca_pem.as_ref().unwrap());
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\nclusters: [{{name: sim, cluster: {{server: '{}', certificate-authority-data: {ca}}}}}]\n\
             users: [{{name: u, user: {{token: {TOKEN}}}}}]\ncontexts: [{{name: c, context: {{cluster: sim, user: u, namespace: spark}}}}]\n\
             current-context: c\n",
            srv.url()
        ),
    )
    .unwrap();
    let manifest = dir.path().join("app.json");
    std::fs::write(&manifest, serde_json::to_string(&spark_pi("kpi", serde_json::json!({"via": "kubectl"}))).unwrap())
        .unwrap();

    let (ok, out) = tokio::task::block_in_place(|| kubectl(&kubeconfig, &["create", "-f", manifest.to_str().unwrap()]));
    assert!(ok, "{out}");
    let api = apps(&client(&srv), "spark");
    wait_state(&api, "kpi", "COMPLETED").await;

    let (ok, out) = tokio::task::block_in_place(|| kubectl(&kubeconfig, &["get", "sparkapplications"]));
    assert!(ok, "{out}");
    let header = out.lines().next().unwrap_or_default();
    assert!(header.contains("NAME") && header.contains("STATUS") && header.contains("ATTEMPTS"), "{out}");
    assert!(out.lines().any(|l| l.starts_with("kpi") && l.contains("COMPLETED")), "{out}");

    let (ok, out) = tokio::task::block_in_place(|| {
        kubectl(&kubeconfig, &["get", "sparkapp", "kpi", "-o", "jsonpath={.status.sparkApplicationId}"])
    });
    assert!(ok && out.starts_with("spark-"), "{out}");
    let (ok, out) = tokio::task::block_in_place(|| kubectl(&kubeconfig, &["logs", "kpi-driver"]));
    assert!(ok && out.contains("Pi is roughly"), "{out}");

    // Server-side validation reaches kubectl users as a readable error.
    let bad = dir.path().join("bad.json");
    let mut invalid = spark_pi("kbad", serde_json::json!({}));
    invalid.data["spec"]["type"] = serde_json::json!("Go");
    std::fs::write(&bad, serde_json::to_string(&invalid).unwrap()).unwrap();
    let (ok, out) = tokio::task::block_in_place(|| kubectl(&kubeconfig, &["create", "-f", bad.to_str().unwrap()]));
    assert!(!ok && out.contains("spec.type"), "{out}");

    let (ok, out) = tokio::task::block_in_place(|| kubectl(&kubeconfig, &["delete", "sparkapplication", "kpi"]));
    assert!(ok && out.contains("deleted"), "{out}");
    assert!(api.list(&ListParams::default()).await.unwrap().items.is_empty());
}
