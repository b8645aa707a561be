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
use std::fmt;
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

/// A guard on an append: it is carried out only if `current` still holds
/// `expected` when the writer reaches it. A partition bumps its generation on
/// every role change before it queues anything else, so an append queued under
/// an old role (a leader's produce racing a step-down, a follower's fetch racing
/// a promotion) can never land after the change.
#[derive(Clone, Debug)]
pub struct Fence {
    /// The partition's role generation.
    pub current: Arc<AtomicU64>,
    /// The generation the append was decided under.
    pub expected: u64,
}

impl Fence {
    /// Whether the role is still the one the caller decided under.
    pub fn holds(&self) -> bool {
        self.current.load(Ordering::SeqCst) == self.expected
    }
}

type Job = Box<dyn FnOnce(&mut Log) + Send>;

enum Request {
    AppendLeader {
        records: Bytes,
        epoch: LeaderEpoch,
        fence: Option<Fence>,
        reply: oneshot::Sender<LogResult<AppendInfo>>,
    },
    AppendFollower {
        records: Bytes,
        fence: Option<Fence>,
        reply: oneshot::Sender<LogResult<AppendInfo>>,
    },
    /// Any other work on the log, in queue order after every earlier append is
    /// durable.
    With(Job),
    /// Close the log, delete its files, and stop.
    Delete {
        reply: oneshot::Sender<LogResult<()>>,
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

impl fmt::Debug for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Request::AppendLeader { .. } => "AppendLeader",
            Request::AppendFollower { .. } => "AppendFollower",
            Request::With(_) => "With",
            Request::Delete { .. } => "Delete",
            Request::Read { .. } => "Read",
            Request::Flush { .. } => "Flush",
        })
    }
}

impl LogHandle {
    /// Appends as leader (see [`Log::append_as_leader`]); with the default flush
    /// policy, returns once the records are fsynced.
    pub async fn append_as_leader(
        &self,
        records: Bytes,
        epoch: LeaderEpoch,
    ) -> LogResult<AppendInfo> {
        self.append_as_leader_fenced(records, epoch, None).await
    }

    /// [`append_as_leader`](Self::append_as_leader), carried out only while
    /// `fence` holds (else [`LogError::Fenced`]).
    pub async fn append_as_leader_fenced(
        &self,
        records: Bytes,
        epoch: LeaderEpoch,
        fence: Option<Fence>,
    ) -> LogResult<AppendInfo> {
        self.call(|reply| Request::AppendLeader {
            records,
            epoch,
            fence,
            reply,
        })
        .await
    }

    /// Appends as follower (see [`Log::append_as_follower`]); with the default
    /// flush policy, returns once the records are fsynced.
    pub async fn append_as_follower(&self, records: Bytes) -> LogResult<AppendInfo> {
        self.append_as_follower_fenced(records, None).await
    }

    /// [`append_as_follower`](Self::append_as_follower), carried out only while
    /// `fence` holds (else [`LogError::Fenced`]).
    pub async fn append_as_follower_fenced(
        &self,
        records: Bytes,
        fence: Option<Fence>,
    ) -> LogResult<AppendInfo> {
        self.call(|reply| Request::AppendFollower {
            records,
            fence,
            reply,
        })
        .await
    }

    /// Runs `job` on the log in the writer task, after every append queued
    /// before it is durable and acknowledged: truncation, epoch assignment,
    /// lookups that must see a consistent log.
    pub async fn with<T: Send + 'static>(
        &self,
        job: impl FnOnce(&mut Log) -> T + Send + 'static,
    ) -> LogResult<T> {
        let (reply, rx) = oneshot::channel();
        let job: Job = Box::new(move |log| {
            let _ = reply.send(job(log));
        });
        self.tx
            .send(Request::With(job))
            .await
            .map_err(|_| LogError::WriterStopped)?;
        rx.await.map_err(|_| LogError::WriterStopped)
    }

    /// Closes the log and deletes its files and directory; the writer stops and
    /// every later call gets [`LogError::WriterStopped`].
    pub async fn delete(&self) -> LogResult<()> {
        self.call(|reply| Request::Delete { reply }).await
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
            let mut delete = self.handle(first);
            let mut taken = 1;
            while delete.is_none() && taken < MAX_GROUP {
                let Ok(request) = rx.try_recv() else { break };
                delete = self.handle(request);
                taken += 1;
            }
            self.commit_group();
            if let Some(reply) = delete {
                rx.close();
                let _ = reply.send(self.log.delete(self.clock.now_ms()));
                return Ok(());
            }
        }
        self.log.close(self.clock.now_ms())
    }

    /// Carries out one request; a `Delete` is handed back for the loop to
    /// finish once the group is committed.
    fn handle(&mut self, request: Request) -> Option<oneshot::Sender<LogResult<()>>> {
        match request {
            Request::AppendLeader {
                records,
                epoch,
                fence,
                reply,
            } => {
                let result = match fence.filter(|f| !f.holds()) {
                    Some(_) => Err(LogError::Fenced),
                    None => self.log.append_as_leader(&records, epoch),
                };
                self.after_append(result, reply);
            }
            Request::AppendFollower {
                records,
                fence,
                reply,
            } => {
                let result = match fence.filter(|f| !f.holds()) {
                    Some(_) => Err(LogError::Fenced),
                    None => self.log.append_as_follower(&records),
                };
                self.after_append(result, reply);
            }
            Request::With(job) => {
                self.commit_group();
                job(&mut self.log);
            }
            Request::Delete { reply } => return Some(reply),
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
        None
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
