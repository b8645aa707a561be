//! The log's single writer: a task that owns the [`Log`] and carries out requests
//! sent through a cloneable [`LogHandle`], with group commit.
//!
//! ```text
//! append() ─┐                       ┌─ drain every queued request, append each
//! append() ─┼─ mpsc ─> writer task ─┤  one fsync for all of them (EveryAppend)
//! read()   ─┘                       └─ reply to each over its oneshot
//! ```
//!
//! While one fsync runs, new appends queue up and share the next one, so the
//! number of fsyncs per second stays bounded by the disk while throughput grows
//! with concurrency.

use crate::clock::Clock;
use crate::error::{LogError, LogResult};
use crate::log::{AppendInfo, FlushPolicy, Log, LogRead};
use crate::position::{LeaderEpoch, Offset};
use bytes::Bytes;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

/// Requests taken from the queue before one shared fsync.
const MAX_GROUP: usize = 1024;

/// Counters of the writer's work, for tests and metrics.
#[derive(Debug, Default)]
pub struct WriterStats {
    /// Appends carried out.
    pub appends: AtomicU64,
    /// fsyncs run.
    pub fsyncs: AtomicU64,
}

enum Request {
    AppendLeader {
        records: Bytes,
        epoch: LeaderEpoch,
        reply: oneshot::Sender<LogResult<AppendInfo>>,
    },
    AppendFollower {
        records: Bytes,
        reply: oneshot::Sender<LogResult<AppendInfo>>,
    },
    Read {
        from: Offset,
        max_bytes: usize,
        upper_bound: Offset,
        reply: oneshot::Sender<LogResult<LogRead>>,
    },
    Flush {
        reply: oneshot::Sender<LogResult<Offset>>,
    },
}

/// A cloneable handle to a log's writer task. The task stops, flushing the log,
/// when the last handle is dropped.
#[derive(Clone, Debug)]
pub struct LogHandle {
    tx: mpsc::Sender<Request>,
    stats: Arc<WriterStats>,
}

/// Starts the writer task for `log`. The returned `JoinHandle` yields the
/// result of the final flush once every handle is gone.
pub fn spawn_writer(log: Log, clock: Arc<dyn Clock>) -> (LogHandle, JoinHandle<LogResult<()>>) {
    let (tx, rx) = mpsc::channel(MAX_GROUP);
    let stats = Arc::new(WriterStats::default());
    let writer = Writer {
        log,
        clock,
        stats: stats.clone(),
        waiting: Vec::new(),
    };
    let task = tokio::spawn(writer.run(rx));
    (LogHandle { tx, stats }, task)
}

impl LogHandle {
    /// Appends as leader (see [`Log::append_as_leader`]); with the default flush
    /// policy, returns once the records are fsynced.
    pub async fn append_as_leader(
        &self,
        records: Bytes,
        epoch: LeaderEpoch,
    ) -> LogResult<AppendInfo> {
        self.call(|reply| Request::AppendLeader {
            records,
            epoch,
            reply,
        })
        .await
    }

    /// Appends as follower (see [`Log::append_as_follower`]); with the default
    /// flush policy, returns once the records are fsynced.
    pub async fn append_as_follower(&self, records: Bytes) -> LogResult<AppendInfo> {
        self.call(|reply| Request::AppendFollower { records, reply })
            .await
    }

    /// Reads (see [`Log::read`]).
    pub async fn read(
        &self,
        from: Offset,
        max_bytes: usize,
        upper_bound: Offset,
    ) -> LogResult<LogRead> {
        self.call(|reply| Request::Read {
            from,
            max_bytes,
            upper_bound,
            reply,
        })
        .await
    }

    /// Fsyncs now, whatever the policy; returns the durable end.
    pub async fn flush(&self) -> LogResult<Offset> {
        self.call(|reply| Request::Flush { reply }).await
    }

    /// The writer's counters.
    pub fn stats(&self) -> &WriterStats {
        &self.stats
    }

    async fn call<T>(
        &self,
        request: impl FnOnce(oneshot::Sender<LogResult<T>>) -> Request,
    ) -> LogResult<T> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(request(reply))
            .await
            .map_err(|_| LogError::WriterStopped)?;
        rx.await.map_err(|_| LogError::WriterStopped)?
    }
}

struct Writer {
    log: Log,
    clock: Arc<dyn Clock>,
    stats: Arc<WriterStats>,
    /// Appends done but not yet acknowledged: they wait for the group's fsync.
    waiting: Vec<(AppendInfo, oneshot::Sender<LogResult<AppendInfo>>)>,
}

impl Writer {
    async fn run(mut self, mut rx: mpsc::Receiver<Request>) -> LogResult<()> {
        let mut ticker = match self.log.config().flush {
            FlushPolicy::Periodic { interval, .. } => Some(tokio::time::interval(interval)),
            _ => None,
        };
        loop {
            let first = tokio::select! {
                biased;
                request = rx.recv() => request,
                _ = tick(&mut ticker) => {
                    self.maybe_flush();
                    continue;
                }
            };
            let Some(first) = first else { break };
            self.handle(first);
            let mut taken = 1;
            while taken < MAX_GROUP {
                let Ok(request) = rx.try_recv() else { break };
                self.handle(request);
                taken += 1;
            }
            self.commit_group();
        }
        self.log.close(self.clock.now_ms())
    }

    fn handle(&mut self, request: Request) {
        match request {
            Request::AppendLeader {
                records,
                epoch,
                reply,
            } => {
                let result = self.log.append_as_leader(&records, epoch);
                self.after_append(result, reply);
            }
            Request::AppendFollower { records, reply } => {
                let result = self.log.append_as_follower(&records);
                self.after_append(result, reply);
            }
            Request::Read {
                from,
                max_bytes,
                upper_bound,
                reply,
            } => {
                let _ = reply.send(self.log.read(from, max_bytes, upper_bound));
            }
            Request::Flush { reply } => {
                self.commit_group();
                self.stats.fsyncs.fetch_add(1, Ordering::Relaxed);
                let _ = reply.send(self.log.flush(self.clock.now_ms()));
            }
        }
    }

    fn after_append(
        &mut self,
        result: LogResult<AppendInfo>,
        reply: oneshot::Sender<LogResult<AppendInfo>>,
    ) {
        match result {
            Ok(info) => {
                self.stats.appends.fetch_add(1, Ordering::Relaxed);
                if self.log.config().flush == FlushPolicy::EveryAppend {
                    self.waiting.push((info, reply));
                } else {
                    let _ = reply.send(Ok(info));
                }
            }
            Err(e) => {
                let _ = reply.send(Err(e));
            }
        }
    }

    /// One fsync for every append waiting on it, then the replies. If the fsync
    /// fails, none of them is acknowledged.
    fn commit_group(&mut self) {
        if self.waiting.is_empty() {
            self.maybe_flush();
            return;
        }
        self.stats.fsyncs.fetch_add(1, Ordering::Relaxed);
        let flushed = self.log.flush(self.clock.now_ms());
        for (info, reply) in self.waiting.drain(..) {
            let result = match &flushed {
                Ok(_) => Ok(info),
                Err(_) => Err(LogError::Failed {
                    dir: self.log.dir().to_path_buf(),
                    reason: "fsync failed; the append is not durable".into(),
                }),
            };
            let _ = reply.send(result);
        }
    }

    fn maybe_flush(&mut self) {
        if self.log.flush_due(self.clock.now_ms()) {
            self.stats.fsyncs.fetch_add(1, Ordering::Relaxed);
            // A failure is kept in the log's failed state and reported to the
            // next caller; there is no one waiting to tell now.
            let _ = self.log.flush(self.clock.now_ms());
        }
    }
}

async fn tick(ticker: &mut Option<tokio::time::Interval>) {
    match ticker {
        Some(t) => {
            t.tick().await;
        }
        None => std::future::pending().await,
    }
}
