//! The recorded history of a simulation: every client operation and its
//! outcome, every fault, stamped with simulated time. The checker reads it;
//! its text form is the run's trace (the same seed gives the same trace).

use std::fmt::Write as _;
use std::sync::{Arc, Mutex, MutexGuard};

/// A record's identity in a partition: (topic, partition).
pub type Tp = (String, u32);

/// One thing that happened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    /// A producer starts sending `value` (its key is the value too).
    SendInvoke {
        /// The topic.
        topic: String,
        /// The unique value.
        value: String,
    },
    /// The send was acknowledged (acks=all) at `offset`.
    SendOk {
        /// The topic.
        topic: String,
        /// The partition it went to.
        partition: u32,
        /// The acknowledged offset.
        offset: u64,
        /// The value.
        value: String,
    },
    /// The send's outcome is unknown (a timeout, a lost connection): it may
    /// or may not be in the log.
    SendInfo {
        /// The topic.
        topic: String,
        /// The value.
        value: String,
        /// Why.
        error: String,
    },
    /// The send definitely did not append (the server said so).
    SendFail {
        /// The topic.
        topic: String,
        /// The value.
        value: String,
        /// The server's answer.
        error: String,
    },
    /// A consumer's fetch from `from` returned `records` and the high watermark.
    Poll {
        /// The topic.
        topic: String,
        /// The partition.
        partition: u32,
        /// The offset fetched from.
        from: u64,
        /// (offset, value) in the order received.
        records: Vec<(u64, String)>,
        /// The high watermark in the answer.
        high_watermark: u64,
    },
    /// An admin call and its result.
    Admin {
        /// What was asked.
        what: String,
        /// "ok" or the error.
        result: String,
    },
    /// A write to the partition acknowledged after the faults healed.
    Live {
        /// The topic.
        topic: String,
        /// The partition.
        partition: u32,
    },
    /// After healing: the whole partition, from its start to its high watermark.
    FinalRead {
        /// The topic.
        topic: String,
        /// The partition.
        partition: u32,
        /// (offset, value) from the log start to the high watermark.
        records: Vec<(u64, String)>,
    },
    /// A fault began or ended (what the driver did).
    Fault(String),
    /// Every fault healed.
    Healed,
}

/// One event: when (simulated ms), who, what.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// Simulated milliseconds since the start.
    pub at_ms: u64,
    /// The process (client host or "driver").
    pub process: String,
    /// What happened.
    pub op: Op,
}

/// A shared, append-only history.
#[derive(Clone, Debug, Default)]
pub struct History {
    events: Arc<Mutex<Vec<Event>>>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Simulated milliseconds now (0 outside a simulation).
pub fn now_ms() -> u64 {
    turmoil::sim_elapsed().map_or(0, |d| d.as_millis() as u64)
}

impl History {
    /// An empty history.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records `op` by `process` now.
    pub fn record(&self, process: &str, op: Op) {
        self.record_at(now_ms(), process, op);
    }

    /// Records `op` at a given time (the driver, outside any host).
    pub fn record_at(&self, at_ms: u64, process: &str, op: Op) {
        lock(&self.events).push(Event {
            at_ms,
            process: process.to_string(),
            op,
        });
    }

    /// A copy of every event so far.
    pub fn events(&self) -> Vec<Event> {
        lock(&self.events).clone()
    }

    /// The trace: one line per event.
    pub fn trace(&self) -> String {
        let mut out = String::new();
        for e in lock(&self.events).iter() {
            let _ = writeln!(out, "{:>8} {:<10} {:?}", e.at_ms, e.process, e.op);
        }
        out
    }
}
