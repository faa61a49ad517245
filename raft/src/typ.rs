//! The openraft type configuration and the aliases the rest of the crate uses, so that openraft's
//! generics stay in this crate.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::model::{Command, Response};
use crate::store::SnapshotFile;

/// A node's id; unique and stable for the life of the cluster.
pub type NodeId = u64;

/// What the cluster knows of a node: where its Raft RPC and its client API listen.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct NodeInfo {
    /// `host:port` of the node-to-node Raft listener.
    pub raft_addr: String,
    /// `host:port` of the client API listener (followers forward writes there).
    pub api_addr: String,
}

impl fmt::Display for NodeInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "raft={} api={}", self.raft_addr, self.api_addr)
    }
}

openraft::declare_raft_types!(
    /// bpg's Raft: commands in, responses out, snapshots as files.
    pub TypeConfig:
        D = Command,
        R = Response,
        NodeId = NodeId,
        Node = NodeInfo,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = SnapshotFile,
);

pub(crate) type Raft = openraft::Raft<TypeConfig>;
pub(crate) type Entry = openraft::Entry<TypeConfig>;
pub(crate) type LogId = openraft::LogId<NodeId>;
pub(crate) type Vote = openraft::Vote<NodeId>;
pub(crate) type StorageError = openraft::StorageError<NodeId>;
pub(crate) type StoredMembership = openraft::StoredMembership<NodeId, NodeInfo>;
pub(crate) type SnapshotMeta = openraft::SnapshotMeta<NodeId, NodeInfo>;
pub(crate) type Snapshot = openraft::Snapshot<TypeConfig>;
