//! A 3-member etcd cluster on loopback, the yardstick for durable replicated writes: each
//! `Put` is one Raft commit, fsynced on a quorum, like each of a submission's commits.

use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use bpg_tests::cluster::{free_port, spawn_logged};
use tokio::process::{Child, Command};

pub(super) struct Etcd {
    members: Vec<Child>,
    /// `http://127.0.0.1:port` of each member's client listener.
    pub(super) client_urls: Vec<String>,
    pub(super) version: String,
}

impl Etcd {
    /// Starts three members of a new cluster under `dir` and waits until they answer healthy.
    pub(super) async fn start(bin: &Path, dir: &Path) -> anyhow::Result<Etcd> {
        let version = std::process::Command::new(bin)
            .arg("--version")
            .output()
            .with_context(|| format!("running {} --version (install Debian's etcd-server)", bin.display()))?;
        let version = String::from_utf8_lossy(&version.stdout).lines().next().unwrap_or("").trim().to_owned();
        let ports: Vec<(u16, u16)> = (0..3).map(|_| (free_port(), free_port())).collect();
        let initial = ports
            .iter()
            .enumerate()
            .map(|(i, (_, peer))| format!("e{i}=http://127.0.0.1:{peer}"))
            .collect::<Vec<_>>()
            .join(",");
        let mut members = Vec::new();
        let mut client_urls = Vec::new();
        for (i, (client, peer)) in ports.iter().enumerate() {
            let data = dir.join(format!("etcd-{i}"));
            let log = std::fs::File::create(dir.join(format!("etcd-{i}.log")))?;
            let client_url = format!("http://127.0.0.1:{client}");
            let peer_url = format!("http://127.0.0.1:{peer}");
            let child = spawn_logged(
                Command::new(bin)
                    .args(["--name", &format!("e{i}")])
                    .arg("--data-dir")
                    .arg(&data)
                    .args(["--listen-client-urls", &client_url, "--advertise-client-urls", &client_url])
                    .args(["--listen-peer-urls", &peer_url, "--initial-advertise-peer-urls", &peer_url])
                    .args(["--initial-cluster", &initial, "--initial-cluster-state", "new"])
                    .args(["--initial-cluster-token", "bpg-bench", "--log-level", "warn"]),
                log,
            )?;
            members.push(child);
            client_urls.push(client_url);
        }
        let etcd = Etcd { members, client_urls, version };
        let http = reqwest::Client::new();
        bpg_tests::wait::until("etcd members healthy", Duration::from_secs(30), || async {
            for url in &etcd.client_urls {
                let health: serde_json::Value =
                    http.get(format!("{url}/health")).send().await.ok()?.json().await.ok()?;
                (health["health"] == "true").then_some(())?;
            }
            Some(())
        })
        .await?;
        Ok(etcd)
    }

    /// The JSON gateway's put endpoint on each member.
    pub(super) fn put_urls(&self) -> Vec<String> {
        self.client_urls.iter().map(|u| format!("{u}/v3/kv/put")).collect()
    }

    pub(super) async fn stop(mut self) {
        for m in &mut self.members {
            let _ = m.start_kill();
            let _ = m.wait().await;
        }
    }
}
