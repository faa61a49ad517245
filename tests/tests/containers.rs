//! The local cluster in containers (deploy/compose.yaml, images from deploy/build-images.sh):
//! bring it up, submit, kill the leader's container, submit again, both jobs complete; then a
//! rolling restart, one container at a time as a StatefulSet update does, under a steady
//! stream of submissions, loses no acknowledged submission. Needs a Docker engine and
//! docker-compose; no image is pulled.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context;
use bpg_tests::cluster::free_port;
use bpg_tests::kubesim::spark_pi;
use bpg_tests::{Client, Credentials, wait};
use serde_json::Value;

const TOKEN: &str = "containers-test-kubesim-token";
const TERMINAL: [&str; 3] = ["COMPLETED", "FAILED", "SUBMISSION_FAILED"];

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace root").to_path_buf()
}

/// A compose project of this test run, torn down (volumes and images too) when dropped.
struct Project {
    name: String,
    tag: String,
    env: Vec<(String, String)>,
    api_ports: [u16; 3],
    admin_ports: [u16; 3],
    kubesim_ports: [u16; 2],
}

impl Project {
    fn compose(&self, args: &[&str]) -> anyhow::Result<String> {
        let out = Command::new("docker-compose")
            .current_dir(repo())
            .args(["-p", &self.name, "-f", "deploy/compose.yaml"])
            .args(args)
            .envs(self.env.iter().cloned())
            .output()
            .context("running docker-compose (this test needs Docker and docker-compose)")?;
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        anyhow::ensure!(out.status.success(), "docker-compose {args:?} failed: {text}");
        Ok(text)
    }

    fn user(&self, node: usize) -> Client {
        Client::new(&format!("127.0.0.1:{}", self.api_ports[node]), Credentials::basic("user", "pass"))
            .with_timeout(Duration::from_secs(20))
    }

    fn admin(&self, node: usize) -> Client {
        Client::new(&format!("127.0.0.1:{}", self.api_ports[node]), Credentials::basic("admin", "admin"))
            .with_timeout(Duration::from_secs(5))
    }

    async fn leader(&self, among: &[usize]) -> anyhow::Result<usize> {
        wait::until("a leader", Duration::from_secs(60), || async {
            for &n in among {
                let s = self.admin(n).raft_status().await.ok()?;
                let leader = s.body["current_leader"].as_u64()? as usize;
                if among.contains(&leader) && self.admin(leader).raft_status().await.ok()?.body["state"] == "Leader" {
                    return Some(leader);
                }
            }
            None
        })
        .await
    }

    async fn wait_ready(&self, node: usize) -> anyhow::Result<()> {
        let url = format!("http://127.0.0.1:{}/ready", self.admin_ports[node]);
        wait::until(&format!("gw{node} ready"), Duration::from_secs(90), || async {
            reqwest::get(&url).await.ok().filter(|r| r.status().is_success()).map(|_| ())
        })
        .await
    }

    async fn terminal(&self, id: &str, via: usize) -> bool {
        self.user(via)
            .status(id, true)
            .await
            .is_ok_and(|a| TERMINAL.contains(&a.body["applicationState"].as_str().unwrap_or("")))
    }

    /// Every SparkApplication in both simulated clusters, by name, with how often it occurs.
    async fn objects(&self) -> anyhow::Result<BTreeMap<String, usize>> {
        let mut seen = BTreeMap::new();
        for port in self.kubesim_ports {
            let url = format!(
                "http://127.0.0.1:{port}/apis/sparkoperator.k8s.io/v1beta2/namespaces/spark-operator/sparkapplications"
            );
            let list: Value = reqwest::Client::new().get(url).bearer_auth(TOKEN).send().await?.json().await?;
            for item in list["items"].as_array().cloned().unwrap_or_default() {
                *seen.entry(item["metadata"]["name"].as_str().unwrap_or_default().to_owned()).or_default() += 1;
            }
        }
        Ok(seen)
    }
}

impl Drop for Project {
    fn drop(&mut self) {
        let _ = self.compose(&["down", "-v", "-t", "5"]);
        for image in
            [format!("bpg:{}", self.tag), format!("kubesim:{}", self.tag), format!("bpg-local-base:{}", self.tag)]
        {
            let _ = Command::new("docker").args(["rmi", "-f", &image]).output();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn containers_survive_a_leader_kill_and_a_rolling_restart() -> anyhow::Result<()> {
    let tag = format!("test{:08x}", rand::random::<u32>());
    tracing::info!("--- build the images from this build's binaries");
    let build = Command::new(repo().join("deploy/build-images.sh"))
        .args([
            "--tag",
            &tag,
            "--bpg-binary",
            env!("CARGO_BIN_EXE_e2e-bpg"),
            "--kubesim-binary",
            env!("CARGO_BIN_EXE_e2e-kubesim"),
        ])
        .output()
        .context("running deploy/build-images.sh (this test needs Docker)")?;
    anyhow::ensure!(build.status.success(), "image build failed: {}", String::from_utf8_lossy(&build.stderr));

    let api_ports = [free_port(), free_port(), free_port()];
    let admin_ports = [free_port(), free_port(), free_port()];
    let kubesim_ports = [free_port(), free_port()];
    let mut env = vec![
        ("BPG_IMAGE".to_owned(), format!("bpg:{tag}")),
        ("KUBESIM_IMAGE".to_owned(), format!("kubesim:{tag}")),
        ("KUBESIM_TOKEN".to_owned(), TOKEN.to_owned()),
        ("BPG_CLUSTER_SECRET".to_owned(), format!("containers-test-secret-{tag}")),
        ("KUBESIM_TIME_SCALE".to_owned(), "0.02".to_owned()),
        ("KUBESIM_PORT_A".to_owned(), kubesim_ports[0].to_string()),
        ("KUBESIM_PORT_B".to_owned(), kubesim_ports[1].to_string()),
    ];
    for i in 0..3 {
        env.push((format!("BPG_API_PORT_{i}"), api_ports[i].to_string()));
        env.push((format!("BPG_ADMIN_PORT_{i}"), admin_ports[i].to_string()));
    }
    let project = Project { name: format!("bpg{tag}"), tag: tag.clone(), env, api_ports, admin_ports, kubesim_ports };
    project.compose(&["up", "-d"])?;
    for n in 0..3 {
        project.wait_ready(n).await?;
    }

    tracing::info!("--- submit, kill the leader's container, submit again");
    let leader = project.leader(&[0, 1, 2]).await?;
    let first = project.user(leader).submit(&spark_pi(), None).await?;
    assert!(first.ok(), "{first:?}");
    project.compose(&["kill", &format!("gw{leader}")])?;
    let survivors: Vec<usize> = (0..3).filter(|n| *n != leader).collect();
    let new_leader = project.leader(&survivors).await?;
    let second = project.user(survivors[0]).submit(&spark_pi(), None).await?;
    assert!(second.ok(), "{second:?}");
    for answer in [&first, &second] {
        let id = answer.body["submissionId"].as_str().unwrap().to_owned();
        wait::until(&format!("{id} completes"), Duration::from_secs(60), || async {
            let a = project.user(new_leader).status(&id, true).await.ok()?;
            (a.body["applicationState"] == "COMPLETED").then_some(())
        })
        .await?;
    }
    project.compose(&["start", &format!("gw{leader}")])?;
    project.wait_ready(leader).await?;

    tracing::info!("--- rolling restart under a steady stream of submissions");
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<Client> = (0..3).map(|n| project.user(n)).collect();
    let submitters: Vec<_> = (0..3)
        .map(|_| {
            let (stop, clients) = (stop.clone(), clients.clone());
            tokio::spawn(async move {
                let mut acked = Vec::new();
                while !stop.load(Ordering::SeqCst) {
                    let c = &clients[rand::random_range(0..clients.len())];
                    match c.submit(&spark_pi(), None).await {
                        Ok(a) if a.ok() => acked.push(a.body["submissionId"].as_str().unwrap().to_owned()),
                        _ => tokio::time::sleep(Duration::from_millis(100)).await,
                    }
                }
                acked
            })
        })
        .collect();
    for n in 0..3 {
        project.compose(&["restart", "-t", "20", &format!("gw{n}")])?;
        project.wait_ready(n).await?;
    }
    stop.store(true, Ordering::SeqCst);
    let mut acked = Vec::new();
    for s in submitters {
        acked.extend(s.await?);
    }
    acked.push(first.body["submissionId"].as_str().unwrap().to_owned());
    acked.push(second.body["submissionId"].as_str().unwrap().to_owned());
    eprintln!("{} submissions acknowledged across the kill and the rolling restart", acked.len());
    assert!(acked.len() > 10, "too few submissions to mean anything");

    let leader = project.leader(&[0, 1, 2]).await?;
    wait::until("every acknowledged job created once and terminal", Duration::from_secs(120), || async {
        let objects = project.objects().await.ok()?;
        for id in &acked {
            match objects.get(id) {
                Some(1) => {}
                Some(n) => panic!("{id} exists {n} times"),
                None => return None,
            }
            if !project.terminal(id, leader).await {
                return None;
            }
        }
        Some(())
    })
    .await?;
    Ok(())
}
