//! The controller quorum's topic operations as a broker asks for them (the
//! Kafka listener's admin APIs, the group coordinator creating
//! `__consumer_offsets`). The node provides them over its controller, which
//! forwards to the Raft leader: the broker crate does not import the
//! controller.

use raftline_proto::pb;
use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::pin::Pin;

/// What an admin call returns: a value, or the typed error (code, message).
pub type AdminFuture<'a, T = ()> = Pin<Box<dyn Future<Output = Result<T, pb::Error>> + Send + 'a>>;

/// One partition's leader election: its topic, index, and its leader after
/// the election or why it did not happen.
pub type Elected = (String, u32, Result<Option<u32>, pb::Error>);

/// The controller quorum's topic operations, as the node provides them (the
/// call is forwarded to the Raft leader).
pub trait ClusterAdmin: Send + Sync {
    /// Creates a topic; its id.
    fn create_topic(
        &self,
        name: String,
        partitions: u32,
        replication_factor: u32,
        configs: BTreeMap<String, String>,
    ) -> AdminFuture<'_, u64>;
    /// Deletes a topic.
    fn delete_topic(&self, name: String) -> AdminFuture<'_>;
    /// Grows a topic to `total` partitions.
    fn create_partitions(&self, name: String, total: u32) -> AdminFuture<'_>;
    /// Changes a topic's configs: `set` replaces values, `delete` restores
    /// their defaults.
    fn alter_topic_configs(
        &self,
        name: String,
        set: BTreeMap<String, String>,
        delete: BTreeSet<String>,
    ) -> AdminFuture<'_>;
    /// Leader elections (preferred, or `unclean`) of `partitions` of
    /// `topic` (all of them if empty), or of every topic's partitions if
    /// `topic` is `None`.
    fn elect_leaders(
        &self,
        topic: Option<String>,
        partitions: Vec<u32>,
        unclean: bool,
    ) -> AdminFuture<'_, Vec<Elected>>;
}
