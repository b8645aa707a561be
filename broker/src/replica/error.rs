//! [`ReplicaError`]: what produce, fetch and offset lookups can answer instead
//! of data. Each names the partition; the API maps each to one wire code.

use crate::error::LogError;
use crate::metadata::BrokerId;
use crate::position::{LeaderEpoch, Offset, TopicPartition};
use thiserror::Error;

/// A failed partition request. Nothing was appended unless the variant says so.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum ReplicaError {
    /// The partition does not exist, or not on this broker.
    #[error("unknown topic or partition {partition}: check the name with `raftline topic list`")]
    UnknownTopicOrPartition {
        /// The partition asked for.
        partition: TopicPartition,
    },
    /// This broker does not lead the partition.
    #[error("broker {local} does not lead {partition}{}", leader_hint(*.leader))]
    NotLeader {
        /// The partition.
        partition: TopicPartition,
        /// This broker.
        local: BrokerId,
        /// The leader this broker knows of, if any.
        leader: Option<BrokerId>,
    },
    /// acks=all with an ISR below `min.insync.replicas`.
    #[error("not enough in-sync replicas for {partition}: ISR has {isr}, min.insync.replicas is {min}; nothing was appended")]
    NotEnoughReplicas {
        /// The partition.
        partition: TopicPartition,
        /// The ISR's size.
        isr: usize,
        /// The setting.
        min: usize,
    },
    /// The request's leader epoch is older than the partition's.
    #[error(
        "fenced leader epoch {given} for {partition}: it is at epoch {current}; refresh metadata"
    )]
    FencedLeaderEpoch {
        /// The partition.
        partition: TopicPartition,
        /// The epoch in the request.
        given: LeaderEpoch,
        /// The partition's epoch here.
        current: LeaderEpoch,
    },
    /// The request's leader epoch is newer than this broker knows.
    #[error(
        "unknown leader epoch {given} for {partition}: this broker is at epoch {current}; retry"
    )]
    UnknownLeaderEpoch {
        /// The partition.
        partition: TopicPartition,
        /// The epoch in the request.
        given: LeaderEpoch,
        /// The partition's epoch here.
        current: LeaderEpoch,
    },
    /// A new leader's high watermark is still below the log end it was
    /// elected with: consumers are not served yet, so the high watermark
    /// they see never goes back.
    #[error(
        "{partition}: its new leader is still committing what it was elected with (high watermark {high_watermark}, needs {epoch_start}); retry"
    )]
    OffsetNotAvailable {
        /// The partition.
        partition: TopicPartition,
        /// The leader's high watermark now.
        high_watermark: Offset,
        /// The log end at its election.
        epoch_start: Offset,
    },
    /// The offset lies outside the log.
    #[error(
        "offset {offset} is out of range for {partition}: the log holds {log_start}..{log_end}"
    )]
    OffsetOutOfRange {
        /// The partition.
        partition: TopicPartition,
        /// The offset asked for.
        offset: Offset,
        /// The log start offset.
        log_start: Offset,
        /// The log end (or, for consumers, the high watermark).
        log_end: Offset,
    },
    /// A batch over `max.message.bytes`.
    #[error("record batch of {size} bytes for {partition} exceeds max.message.bytes {max}")]
    RecordTooLarge {
        /// The partition.
        partition: TopicPartition,
        /// The batch's size.
        size: u64,
        /// The limit.
        max: u64,
    },
    /// A batch failed its CRC or structure checks.
    #[error("corrupt or malformed record batch for {partition}: {reason}")]
    CorruptRecord {
        /// The partition.
        partition: TopicPartition,
        /// What is wrong.
        reason: String,
    },
    /// A well-formed batch the topic refuses (Kafka's INVALID_RECORD).
    #[error("{partition} refuses the batch: {reason}; nothing was appended")]
    InvalidRecord {
        /// The partition.
        partition: TopicPartition,
        /// Why.
        reason: String,
    },
    /// A client tried to write a topic only the brokers write.
    #[error("{topic} is internal: only the group coordinator writes it (commit offsets with a group consumer or `raftline group`)")]
    InternalTopic {
        /// The topic.
        topic: String,
    },
    /// The request as a whole is malformed.
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// The partition's storage failed (disk full, I/O error).
    #[error("storage error on {partition}: {reason}")]
    Storage {
        /// The partition.
        partition: TopicPartition,
        /// What failed.
        reason: String,
    },
    /// An idempotent producer's batch does not follow its last one.
    #[error("{partition}: {reason}; nothing was appended")]
    OutOfOrderSequence {
        /// The partition.
        partition: TopicPartition,
        /// The log's explanation.
        reason: String,
    },
    /// A batch from an older epoch of its producer.
    #[error("{partition}: {reason}; nothing was appended")]
    InvalidProducerEpoch {
        /// The partition.
        partition: TopicPartition,
        /// The log's explanation.
        reason: String,
    },
    /// A cluster service the request needs (the controller) did not answer.
    #[error("{what} is unavailable right now: {reason}; retry shortly")]
    Unavailable {
        /// What.
        what: String,
        /// Why.
        reason: String,
    },
    /// The wait for replicas ran out; the batch may or may not be committed.
    #[error("timed out after {timeout_ms} ms waiting for the replicas of {partition}; the batch is in the leader's log and may yet be committed")]
    Timeout {
        /// The partition.
        partition: TopicPartition,
        /// The timeout.
        timeout_ms: u64,
    },
}

fn leader_hint(leader: Option<BrokerId>) -> String {
    match leader {
        Some(b) => format!("; broker {b} does"),
        None => "; it has no leader right now (retry shortly)".into(),
    }
}

impl ReplicaError {
    /// A log error on `partition` as the client should see it.
    pub fn from_log(partition: &TopicPartition, error: LogError) -> ReplicaError {
        let partition = partition.clone();
        match error {
            LogError::RecordTooLarge { size, max } => ReplicaError::RecordTooLarge {
                partition,
                size,
                max,
            },
            LogError::CorruptRecord { reason, .. } => ReplicaError::CorruptRecord {
                partition,
                reason: reason.to_string(),
            },
            LogError::InvalidRecord { reason } => ReplicaError::InvalidRecord { partition, reason },
            LogError::OffsetOutOfRange {
                offset,
                log_start,
                log_end,
            } => ReplicaError::OffsetOutOfRange {
                partition,
                offset,
                log_start,
                log_end,
            },
            e @ LogError::OutOfOrderSequence { .. } => ReplicaError::OutOfOrderSequence {
                partition,
                reason: e.to_string(),
            },
            e @ LogError::InvalidProducerEpoch { .. } => ReplicaError::InvalidProducerEpoch {
                partition,
                reason: e.to_string(),
            },
            other => ReplicaError::Storage {
                partition,
                reason: other.to_string(),
            },
        }
    }
}
