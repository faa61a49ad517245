//! Support for bpg's end-to-end tests: [`cluster::TestCluster`] runs real `bpg` processes,
//! [`client::Client`] speaks the gateway's HTTP API, [`wait::until`] waits on conditions.
//! The chaos harness (`jepsen`) uses the same client.

pub mod client;
pub mod cluster;
pub mod gateway;
pub mod kubesim;
pub mod register;
pub mod wait;

pub use client::{Answer, Body, Client, Credentials};
pub use cluster::{ClusterOptions, TestCluster};
