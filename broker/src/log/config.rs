//! Per-partition log settings, named after Kafka's topic configs.

use super::tail::TailBudget;
use crate::error::{LogError, LogResult};
pub use raftline_proto::topic_config::CleanupPolicy;
use std::sync::Arc;
use std::time::Duration;

/// When the log fsyncs, and whether an append waits for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlushPolicy {
    /// fsync before an append is reported durable; appends that arrive while an
    /// fsync runs share the next one (group commit). The default: an acknowledged
    /// acks=all write survives a power loss of every replica.
    EveryAppend,
    /// fsync once `messages` records (Kafka's `flush.messages`) or `interval`
    /// (`flush.ms`) have accumulated; appends are acknowledged before that.
    Periodic {
        /// Records between fsyncs; at least 1.
        messages: u64,
        /// Time between fsyncs.
        interval: Duration,
    },
    /// Never fsync from the log; the OS writes back (Kafka's own default). Relies
    /// on replication alone: a power loss of every replica loses acknowledged data.
    Never,
}

/// The settings of one partition log. Construct with `LogConfig::default()` and
/// struct update syntax; [`validate`](Self::validate) runs on open.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogConfig {
    /// `segment.bytes`: roll to a new segment before one grows past this. Bytes;
    /// default 1 GiB; 14 to 2^31 - 1.
    pub segment_bytes: u64,
    /// `segment.ms`: roll a segment whose first batch is this old. Default 7 days;
    /// `None` never rolls by age.
    pub segment_age: Option<Duration>,
    /// `index.interval.bytes`: bytes between sparse offset-index entries. Default 4 KiB.
    pub index_interval_bytes: u64,
    /// `retention.ms`: delete segments whose newest record is older. Default 7
    /// days; `None` (Kafka's -1) keeps them forever.
    pub retention_age: Option<Duration>,
    /// `retention.bytes`: delete the oldest segments while the log is larger than
    /// this. Default `None` (no limit).
    pub retention_bytes: Option<u64>,
    /// `max.message.bytes`: the largest batch accepted. Bytes; default 1 MiB + 12.
    pub max_batch_bytes: u64,
    /// When to fsync. Default [`FlushPolicy::EveryAppend`].
    pub flush: FlushPolicy,
    /// `cleanup.policy`: retention (`delete`, the default), compaction, or both.
    /// Without `delete`, `retention.ms` and `retention.bytes` remove nothing.
    pub cleanup: CleanupPolicy,
    /// `delete.retention.ms`: how long a tombstone (a record with a key and no
    /// value) stays readable after it is first compacted, so that a consumer
    /// reading from the start sees the delete. Default 1 day.
    pub delete_retention: Duration,
    /// `min.compaction.lag.ms`: records younger than this (by their batch's
    /// timestamp) are not compacted. Default 0.
    pub min_compaction_lag: Duration,
    /// `min.cleanable.dirty.ratio` in thousandths: the cleaner runs once the
    /// uncleaned share of the cleanable log reaches it. Default 500 (0.5).
    pub min_cleanable_dirty_permille: u16,
    /// Synced bytes behind each segment's end kept in the page cache: after
    /// each fsync the older ones are handed back to the kernel. Default
    /// [`DEFAULT_CACHED_TAIL`] (4 MiB); `None` leaves everything to the kernel,
    /// as Kafka does (node setting `log_cached_tail_bytes`, 0 for `None`).
    pub cached_tail: Option<u64>,
    /// The broker's budget for leaders' in-memory tails beyond 4 MiB each
    /// (see [`TailBudget`]); `None`: 4 MiB per log (node setting
    /// `log_leader_tail_bytes`, 0 for `None`).
    pub leader_tail: Option<Arc<TailBudget>>,
}

/// The default [`LogConfig::cached_tail`]: what followers and tailing
/// consumers read next.
pub const DEFAULT_CACHED_TAIL: u64 = 4 << 20;

const DAY: Duration = Duration::from_secs(24 * 60 * 60);

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            segment_bytes: 1 << 30,
            segment_age: Some(7 * DAY),
            index_interval_bytes: 4096,
            retention_age: Some(7 * DAY),
            retention_bytes: None,
            max_batch_bytes: (1 << 20) + 12,
            flush: FlushPolicy::EveryAppend,
            cleanup: CleanupPolicy::default(),
            delete_retention: DAY,
            min_compaction_lag: Duration::ZERO,
            min_cleanable_dirty_permille: 500,
            cached_tail: Some(DEFAULT_CACHED_TAIL),
            leader_tail: None,
        }
    }
}

impl LogConfig {
    /// Checks every value's range, naming the setting that is wrong.
    pub fn validate(&self) -> LogResult<()> {
        let bad = |msg: String| Err(LogError::InvalidConfig(msg));
        if !(14..=i32::MAX as u64).contains(&self.segment_bytes) {
            return bad(format!(
                "segment.bytes {} must be in [14, 2147483647]",
                self.segment_bytes
            ));
        }
        if self.segment_age == Some(Duration::ZERO) {
            return bad("segment.ms must be at least 1".into());
        }
        if self.max_batch_bytes < 61 || self.max_batch_bytes > i32::MAX as u64 {
            return bad(format!(
                "max.message.bytes {} must be in [61, 2147483647]",
                self.max_batch_bytes
            ));
        }
        if !self.cleanup.delete && !self.cleanup.compact {
            return bad("cleanup.policy must name delete, compact or both".into());
        }
        if self.min_cleanable_dirty_permille > 1000 {
            return bad(format!(
                "min.cleanable.dirty.ratio {} must be in [0, 1]",
                f64::from(self.min_cleanable_dirty_permille) / 1000.0
            ));
        }
        if let FlushPolicy::Periodic { messages, interval } = self.flush {
            if messages == 0 {
                return bad("flush.messages must be at least 1".into());
            }
            if interval.is_zero() {
                return bad("flush.ms must be at least 1".into());
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_out_of_range_values_are_named() {
        assert!(LogConfig::default().validate().is_ok());
        let cases = [
            (
                "segment.bytes",
                LogConfig {
                    segment_bytes: 10,
                    ..Default::default()
                },
            ),
            (
                "segment.ms",
                LogConfig {
                    segment_age: Some(Duration::ZERO),
                    ..Default::default()
                },
            ),
            (
                "max.message.bytes",
                LogConfig {
                    max_batch_bytes: 1,
                    ..Default::default()
                },
            ),
            (
                "flush.ms",
                LogConfig {
                    flush: FlushPolicy::Periodic {
                        messages: 1,
                        interval: Duration::ZERO,
                    },
                    ..Default::default()
                },
            ),
            (
                "cleanup.policy",
                LogConfig {
                    cleanup: CleanupPolicy {
                        delete: false,
                        compact: false,
                    },
                    ..Default::default()
                },
            ),
            (
                "min.cleanable.dirty.ratio",
                LogConfig {
                    min_cleanable_dirty_permille: 1001,
                    ..Default::default()
                },
            ),
            (
                "flush.messages",
                LogConfig {
                    flush: FlushPolicy::Periodic {
                        messages: 0,
                        interval: Duration::from_secs(1),
                    },
                    ..Default::default()
                },
            ),
        ];
        for (name, config) in cases {
            let err = config.validate().unwrap_err().to_string();
            assert!(err.contains(name), "{err} does not name {name}");
        }
    }
}
