//! [`Consumer`]: reads a topic's partitions from chosen positions, one
//! long-polling fetch loop per partition feeding one queue.

use super::{decode_batches, Client, ClientError, ConsumerRecord};
use raftline_broker::records;
use raftline_proto::pb::ErrorCode;
use std::collections::BTreeMap;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// Where a partition's reading starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StartAt {
    /// The log start (`--from-beginning`).
    Earliest,
    /// The high watermark: only records produced from now on.
    Latest,
    /// A given offset.
    Offset(u64),
}

/// The long poll of each fetch.
const MAX_WAIT: Duration = Duration::from_millis(500);
/// Each fetch's size bound.
const MAX_BYTES: u32 = 1 << 20;

/// A consumer of some partitions of one topic (no group).
pub struct Consumer {
    rx: mpsc::Receiver<Result<Vec<ConsumerRecord>, ClientError>>,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for Consumer {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl Consumer {
    /// Reads `topic`'s `partitions` (all if `None`) from `start`.
    pub async fn new(
        client: Client,
        topic: &str,
        partitions: Option<Vec<u32>>,
        start: StartAt,
    ) -> Result<Consumer, ClientError> {
        let all: Vec<u32> = client
            .partitions(topic)
            .await?
            .iter()
            .map(|p| p.index)
            .collect();
        let chosen = match partitions {
            None => all,
            Some(chosen) => {
                if let Some(p) = chosen.iter().find(|p| !all.contains(p)) {
                    return Err(ClientError::Invalid(format!(
                        "topic {topic:?} has no partition {p} (it has {})",
                        all.len()
                    )));
                }
                chosen
            }
        };
        let mut positions = BTreeMap::new();
        for &p in &chosen {
            let offset = match start {
                StartAt::Earliest => client.list_offset(topic, p, -2).await?.unwrap_or(0),
                StartAt::Latest => client.list_offset(topic, p, -1).await?.unwrap_or(0),
                StartAt::Offset(o) => o,
            };
            positions.insert(p, offset);
        }
        let (tx, rx) = mpsc::channel(16);
        let tasks = positions
            .into_iter()
            .map(|(p, offset)| {
                tokio::spawn(fetch_loop(
                    client.clone(),
                    topic.to_string(),
                    p,
                    offset,
                    tx.clone(),
                ))
            })
            .collect();
        Ok(Consumer { rx, tasks })
    }

    /// The next records, waiting up to `max_wait`; empty if none came.
    pub async fn poll(&mut self, max_wait: Duration) -> Result<Vec<ConsumerRecord>, ClientError> {
        match tokio::time::timeout(max_wait, self.rx.recv()).await {
            Ok(Some(result)) => result,
            Ok(None) => Err(ClientError::Transport("every fetch loop stopped".into())),
            Err(_) => Ok(Vec::new()),
        }
    }
}

pub(super) async fn fetch_loop(
    client: Client,
    topic: String,
    p: u32,
    mut offset: u64,
    tx: mpsc::Sender<Result<Vec<ConsumerRecord>, ClientError>>,
) {
    loop {
        let mut end = None;
        let result = client.fetch(&topic, p, offset, MAX_WAIT, MAX_BYTES).await;
        let records = match result {
            Ok(result) => {
                if let Some(e) = result
                    .error
                    .filter(|e| e.code == ErrorCode::OffsetOutOfRange as i32)
                {
                    // Below the log start (retention): go to it; beyond the
                    // high watermark: wait there.
                    let reset = if offset < result.log_start {
                        result.log_start
                    } else {
                        result.high_watermark
                    };
                    tracing::info!(partition = p, from = offset, to = reset, reason = %e.message, "offset out of range: resetting");
                    offset = reset;
                    continue;
                }
                end = records::batches_end(&result.records);
                decode_batches(&topic, p, result.records, offset)
            }
            Err(e) => Err(e),
        };
        match records {
            // Compaction leaves batches whose last offsets hold no record (or
            // none at all): the next fetch starts after the batches, not just
            // after the last record.
            Ok(records) if records.is_empty() => {
                offset = offset.max(end.unwrap_or(offset));
            }
            Ok(records) => {
                let after_last = records.last().map_or(offset, |r| r.offset + 1);
                offset = after_last.max(end.unwrap_or(after_last));
                if tx.send(Ok(records)).await.is_err() {
                    return;
                }
            }
            Err(e) => {
                let retriable = e.retriable();
                if tx.send(Err(e)).await.is_err() || !retriable {
                    return;
                }
                tokio::time::sleep(client.config().retry_backoff).await;
            }
        }
    }
}
