//! Build information for `bpg --version` and `GET {context}/admin/version`: the git commit the
//! binary was built from, marked `-dirty` when the sources of `bpg` differ from it, and when the
//! build took it. `BPG_GIT_COMMIT` and `SOURCE_DATE_EPOCH` in the environment take precedence
//! (a build outside a git checkout, a reproducible build); without `BPG_GIT_COMMIT` or git, the
//! commit is `unknown`.

use std::path::Path;
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

/// The workspace paths whose contents make up `bpg`, relative to this package.
const SOURCES: [&str; 6] = ["../api", "../router", "../raft", "../node", "../Cargo.toml", "../Cargo.lock"];

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

fn main() {
    println!("cargo:rerun-if-env-changed=BPG_GIT_COMMIT");
    println!("cargo:rerun-if-env-changed=SOURCE_DATE_EPOCH");
    for source in SOURCES {
        println!("cargo:rerun-if-changed={source}");
    }
    // A commit, checkout or reset moves HEAD or a branch (logged in `logs/HEAD`); staging
    // changes the index. A path that does not exist would make cargo run this every build.
    for file in ["HEAD", "logs/HEAD", "refs/heads", "packed-refs", "index"] {
        if let Some(path) = git(&["rev-parse", "--git-path", file]).filter(|p| Path::new(p).exists()) {
            println!("cargo:rerun-if-changed={path}");
        }
    }

    let commit = std::env::var("BPG_GIT_COMMIT").ok().filter(|c| !c.is_empty()).or_else(|| {
        let head = git(&["rev-parse", "--short", "HEAD"])?;
        let mut status = vec!["status", "--porcelain", "--untracked-files=no", "--"];
        status.extend(SOURCES);
        let dirty = git(&status).is_none_or(|changes| !changes.is_empty());
        Some(if dirty { format!("{head}-dirty") } else { head })
    });
    println!("cargo:rustc-env=BPG_GIT_COMMIT={}", commit.as_deref().unwrap_or("unknown"));

    let built = match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(epoch) => epoch.trim().parse::<u64>().ok(),
        Err(_) => SystemTime::now().duration_since(UNIX_EPOCH).ok().map(|d| d.as_secs()),
    };
    println!("cargo:rustc-env=BPG_BUILD_TIME={}", built.map_or_else(|| "unknown".to_owned(), rfc3339));
}

/// `secs` since the Unix epoch as `YYYY-MM-DDThh:mm:ssZ`; `unknown` past chrono's range.
fn rfc3339(secs: u64) -> String {
    i64::try_from(secs)
        .ok()
        .and_then(|secs| chrono::DateTime::from_timestamp(secs, 0))
        .map_or_else(|| "unknown".to_owned(), |t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
}
