//! The test network: every gateway node and every kubesim in its own network namespace, with
//! its own address on a private /24, all plugged into one bridge in a hub namespace; the
//! harness reaches them from the root namespace through a veth on the same bridge. Partitions
//! are blackhole routes inside the node namespaces (both directions), so they cut node↔node
//! traffic — Raft and forwarding — and leave the harness's clients alone.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::process::Command;

use anyhow::{Context, bail};

/// A host of the test network.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Host {
    pub ns: String,
    pub ip: Ipv4Addr,
}

#[derive(Debug)]
pub struct Net {
    prefix: String,
    subnet: [u8; 3],
    hosts: Vec<Host>,
    /// Installed cuts, as (from namespace, to address).
    cuts: BTreeSet<(String, Ipv4Addr)>,
    root_link: String,
}

fn ip(args: &[&str]) -> anyhow::Result<()> {
    let out = Command::new("ip").args(args).output().context("running ip (iproute2)")?;
    if !out.status.success() {
        bail!("ip {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(())
}

impl Net {
    /// Creates the hub and the root link, on a /24 not routed on this machine yet.
    pub fn create(run_id: u16) -> anyhow::Result<Net> {
        if !nix::unistd::geteuid().is_root() {
            bail!("network namespaces need root: run the harness as root");
        }
        let prefix = format!("bj{run_id:04x}");
        let third = (100 + run_id % 150) as u8;
        let subnet = [10, 77, third];
        let routes = Command::new("ip").args(["route", "show", &format!("10.77.{third}.0/24")]).output()?;
        if !routes.stdout.is_empty() {
            bail!("10.77.{third}.0/24 is already routed here; pick another run id");
        }
        let net = Net { root_link: format!("{prefix}r"), prefix, subnet, hosts: Vec::new(), cuts: BTreeSet::new() };
        net.destroy_leftovers();
        let hub = net.ns("hub");
        ip(&["netns", "add", &hub])?;
        ip(&["-n", &hub, "link", "set", "lo", "up"])?;
        ip(&["-n", &hub, "link", "add", "br0", "type", "bridge"])?;
        ip(&["-n", &hub, "link", "set", "br0", "up"])?;
        let (r, rh) = (net.root_link.clone(), format!("{}h", net.root_link));
        ip(&["link", "add", &r, "type", "veth", "peer", "name", &rh])?;
        ip(&["link", "set", &rh, "netns", &hub])?;
        ip(&["-n", &hub, "link", "set", &rh, "master", "br0"])?;
        ip(&["-n", &hub, "link", "set", &rh, "up"])?;
        ip(&["addr", "add", &format!("{}/24", net.addr(254)), "dev", &r])?;
        ip(&["link", "set", &r, "up"])?;
        Ok(net)
    }

    fn ns(&self, name: &str) -> String {
        format!("{}-{name}", self.prefix)
    }

    pub fn addr(&self, last: u8) -> Ipv4Addr {
        Ipv4Addr::new(self.subnet[0], self.subnet[1], self.subnet[2], last)
    }

    /// Adds a host named `name` with address `.last`.
    pub fn add_host(&mut self, name: &str, last: u8) -> anyhow::Result<Host> {
        let (ns, hub) = (self.ns(name), self.ns("hub"));
        let (v, vh) = (format!("{}{name}", self.prefix), format!("{}{name}h", self.prefix));
        anyhow::ensure!(vh.len() <= 15, "interface name {vh} is too long");
        ip(&["netns", "add", &ns])?;
        ip(&["-n", &ns, "link", "set", "lo", "up"])?;
        ip(&["link", "add", &v, "type", "veth", "peer", "name", &vh])?;
        ip(&["link", "set", &v, "netns", &ns])?;
        ip(&["link", "set", &vh, "netns", &hub])?;
        let addr = self.addr(last);
        ip(&["-n", &ns, "addr", "add", &format!("{addr}/24"), "dev", &v])?;
        ip(&["-n", &ns, "link", "set", &v, "up"])?;
        ip(&["-n", &hub, "link", "set", &vh, "master", "br0"])?;
        ip(&["-n", &hub, "link", "set", &vh, "up"])?;
        let host = Host { ns, ip: addr };
        self.hosts.push(host.clone());
        Ok(host)
    }

    /// Cuts `a` and `b` off from each other (both directions).
    pub fn cut(&mut self, a: &Host, b: &Host) -> anyhow::Result<()> {
        for (from, to) in [(a, b), (b, a)] {
            if self.cuts.insert((from.ns.clone(), to.ip)) {
                ip(&["-n", &from.ns, "route", "add", "blackhole", &format!("{}/32", to.ip)])?;
            }
        }
        Ok(())
    }

    /// Removes every cut.
    pub fn heal(&mut self) -> anyhow::Result<()> {
        for (ns, to) in std::mem::take(&mut self.cuts) {
            ip(&["-n", &ns, "route", "del", "blackhole", &format!("{to}/32")])?;
        }
        Ok(())
    }

    /// Namespaces and links of a run with this prefix that an earlier crash left behind.
    fn destroy_leftovers(&self) {
        if let Ok(out) = Command::new("ip").args(["netns", "list"]).output() {
            for line in String::from_utf8_lossy(&out.stdout).lines() {
                let name = line.split_whitespace().next().unwrap_or("");
                if name.starts_with(&format!("{}-", self.prefix)) {
                    let _ = ip(&["netns", "del", name]);
                }
            }
        }
        let _ = ip(&["link", "del", &self.root_link]);
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        self.destroy_leftovers();
    }
}

/// The command prefix that runs a program inside `host`'s namespace.
pub fn in_namespace(host: &Host) -> Command {
    let mut c = Command::new("ip");
    c.args(["netns", "exec", &host.ns]);
    c
}
