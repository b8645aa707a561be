//! The replica fetcher: one task per source broker, pulling every partition
//! this broker follows there in one long-poll request.
//!
//! ```text
//! loop: positions (log end, last epoch) ─> ReplicaFetch{replica, broker epoch,
//!         per partition: offset, last fetched epoch, current leader epoch}
//!       per result: diverging ─> truncate │ records ─> append (fsync) │
//!                   out of range ─> reset to the leader's log │ error ─> back off
//! ```
//!
//! Its log end goes to the leader only in the next fetch, after the append is
//! durable: a leader never counts on a follower's unsynced data. Fetches go
//! over the replication wire (`raftline_proto::wire`) on one kept connection
//! to the source's peer port, not gRPC: the records cross without a copy
//! into a message buffer on either side.

use super::leader::Diverging;
use super::partition::{FollowerPosition, Partition, ReadResult};
use crate::controller_link::{Connector, LinkState};
use crate::metadata::BrokerId;
use crate::position::{LeaderEpoch, Offset, TopicPartition};
use futures_util::future::join_all;
use raftline_proto::pb;
use raftline_proto::pb::ErrorCode;
use raftline_proto::wire;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

/// After a failed round, before the next.
const BACKOFF: Duration = Duration::from_millis(100);

/// What the manager tells a fetcher.
pub(crate) enum FetcherCommand {
    /// Follow `partition` (fenced by `generation`).
    Add {
        partition: Arc<Partition>,
        generation: u64,
    },
    /// Stop following it.
    Remove(TopicPartition),
}

#[derive(Clone, Debug)]
pub(crate) struct FetcherConfig {
    pub local: BrokerId,
    pub max_wait: Duration,
    pub partition_max_bytes: u32,
    pub rpc_timeout: Duration,
}

struct Following {
    partition: Arc<Partition>,
    generation: u64,
    position: Option<FollowerPosition>,
}

/// Starts the fetcher for `source`; it ends when the sender is dropped or on
/// shutdown.
pub(crate) fn spawn(
    source: BrokerId,
    config: FetcherConfig,
    connector: Arc<dyn Connector>,
    link: watch::Receiver<LinkState>,
    shutdown: CancellationToken,
) -> mpsc::UnboundedSender<FetcherCommand> {
    let (tx, rx) = mpsc::unbounded_channel();
    let fetcher = Fetcher {
        source,
        config,
        link,
        following: BTreeMap::new(),
        connection: wire::Connection::new(connector),
    };
    tokio::spawn(fetcher.run(rx, shutdown));
    tx
}

struct Fetcher {
    source: BrokerId,
    config: FetcherConfig,
    link: watch::Receiver<LinkState>,
    following: BTreeMap<TopicPartition, Following>,
    /// The replication wire to the source, kept across rounds (a new
    /// connection per round cost a TCP handshake on the acks=all path) and
    /// opened anew after a round that failed or was dropped.
    connection: wire::Connection,
}

impl Fetcher {
    fn command(&mut self, command: FetcherCommand) {
        match command {
            FetcherCommand::Add {
                partition,
                generation,
            } => {
                let tp = partition.topic_partition().clone();
                self.following.insert(
                    tp,
                    Following {
                        partition,
                        generation,
                        position: None,
                    },
                );
            }
            FetcherCommand::Remove(tp) => {
                self.following.remove(&tp);
            }
        }
    }

    async fn run(
        mut self,
        mut rx: mpsc::UnboundedReceiver<FetcherCommand>,
        shutdown: CancellationToken,
    ) {
        loop {
            while let Ok(command) = rx.try_recv() {
                self.command(command);
            }
            self.following
                .retain(|_, f| f.partition.generation() == f.generation);
            if self.following.is_empty() {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    command = rx.recv() => match command {
                        Some(command) => self.command(command),
                        None => return,
                    },
                }
                continue;
            }
            enum Event {
                Stop,
                Command(FetcherCommand),
                Fetched(Option<pb::FetchResponse>),
            }
            let event = tokio::select! {
                _ = shutdown.cancelled() => Event::Stop,
                command = rx.recv() => command.map_or(Event::Stop, Event::Command),
                fetched = self.fetch() => Event::Fetched(fetched),
            };
            let progressed = match event {
                Event::Stop => return,
                // The set changed while the fetch waited: it is dropped and
                // the next one fetches for the new set.
                Event::Command(command) => {
                    self.command(command);
                    true
                }
                // Applied whole, commands waiting meanwhile: an apply cut
                // short could leave its append running in the writer, and the
                // next fetch, from the old position, would fail on it and
                // back off (100 ms without acknowledgements on every other
                // partition from this source whenever a topic came or went).
                Event::Fetched(Some(response)) => tokio::select! {
                    _ = shutdown.cancelled() => return,
                    progressed = self.apply(response) => progressed,
                },
                Event::Fetched(None) => false,
            };
            if !progressed {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(BACKOFF) => {}
                }
            }
        }
    }

    /// One fetch; `None` if it could not be made or failed (back off).
    async fn fetch(&mut self) -> Option<pb::FetchResponse> {
        for f in self.following.values_mut() {
            if f.position.is_none() {
                f.position = f.partition.follower_position().await.ok();
            }
        }
        let state = self.link.borrow().clone();
        let (Some(broker_epoch), Some(addr)) = (
            state.epoch,
            state
                .metadata
                .broker(self.source)
                .and_then(|b| b.endpoints.get("peer").cloned()),
        ) else {
            return None;
        };
        let partitions: Vec<pb::FetchPartition> = self
            .following
            .iter()
            .filter_map(|(tp, f)| {
                let position = f.position?;
                Some(pb::FetchPartition {
                    topic: tp.topic.clone(),
                    partition: tp.partition,
                    offset: position.fetch_offset.0,
                    current_leader_epoch: Some(f.partition.progress().leader_epoch.0),
                    max_bytes: self.config.partition_max_bytes,
                    last_fetched_epoch: position.last_fetched_epoch.map(|e| e.0),
                })
            })
            .collect();
        if partitions.is_empty() {
            return None;
        }
        let request = pb::ReplicaFetchRequest {
            replica_id: self.config.local.0,
            broker_epoch,
            max_wait_ms: u32::try_from(self.config.max_wait.as_millis()).unwrap_or(u32::MAX),
            min_bytes: 1,
            max_bytes: self
                .config
                .partition_max_bytes
                .saturating_mul(u32::try_from(partitions.len()).unwrap_or(u32::MAX)),
            partitions,
        };
        let deadline = self.config.max_wait + self.config.rpc_timeout;
        let answer = tokio::time::timeout(deadline, self.connection.call(&addr, &request)).await;
        match answer {
            Ok(Ok(Ok(response))) => Some(response),
            Ok(Ok(Err(error))) => {
                tracing::debug!(source = %self.source, code = error.code, message = %error.message, "replica fetch refused");
                None
            }
            Ok(Err(e)) => {
                tracing::debug!(source = %self.source, error = %e, "replica fetch failed");
                None
            }
            Err(_) => {
                tracing::debug!(source = %self.source, "replica fetch timed out");
                None
            }
        }
    }

    /// A fetch's results applied; false if none could be (back off).
    async fn apply(&mut self, response: pb::FetchResponse) -> bool {
        // Partitions are applied concurrently: each has its own log writer,
        // so their appends and fsyncs overlap.
        let following = &self.following;
        let applied = join_all(response.partitions.into_iter().filter_map(|result| {
            let tp = TopicPartition {
                topic: result.topic.clone(),
                partition: result.partition,
            };
            let f = following.get(&tp)?;
            Some(async move { (tp, apply_result(f, result).await) })
        }))
        .await;
        let mut progressed = false;
        for (tp, outcome) in applied {
            let Some(f) = self.following.get_mut(&tp) else {
                continue;
            };
            match outcome {
                Ok(position) => {
                    progressed = true;
                    f.position = Some(position);
                }
                Err(reason) => {
                    tracing::debug!(partition = %tp, source = %self.source, %reason, "replica fetch of a partition failed");
                    f.position = None;
                }
            }
        }
        progressed
    }
}

/// Applies one partition's result; the next position, or why not.
async fn apply_result(f: &Following, result: pb::FetchResult) -> Result<FollowerPosition, String> {
    if let Some(error) = result.error {
        return match ErrorCode::try_from(error.code) {
            Ok(ErrorCode::OffsetOutOfRange) => f
                .partition
                .reset_to_leader(
                    f.generation,
                    Offset(result.log_start),
                    Offset(result.log_end),
                )
                .await
                .map_err(|e| e.to_string()),
            _ => Err(error.message),
        };
    }
    let read = ReadResult {
        records: result.records.into(),
        high_watermark: Offset(result.high_watermark),
        log_start: Offset(result.log_start),
        log_end: Offset(result.log_end),
        diverging: result.diverging.map(|d| Diverging {
            epoch: LeaderEpoch(d.epoch),
            end_offset: Offset(d.end_offset),
        }),
    };
    f.partition
        .apply_fetched(f.generation, read)
        .await
        .map_err(|e| e.to_string())
}
