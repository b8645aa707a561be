//! The log's single writer: a task that owns the [`Log`] and carries out requests
//! sent through a cloneable [`LogHandle`], with group commit.
//!
//! ```text
//! append() ─┐                       ┌─ drain every queued request: append each,
//! append() ─┼─ mpsc ─> writer task ─┤  serve each read at once
//! read()   ─┘                       ├─ no fsync under way? begin one for every
//!                                   │  append so far (a blocking thread)
//!                                   └─ when it ends, acknowledge its appends
//! ```
//!
//! While one fsync runs, new appends are written and share the next one, so
//! the number of fsyncs per second stays bounded by the disk while throughput
//! grows with concurrency, and nothing waits behind an fsync but the
//! acknowledgements that need it.

use crate::clock::Clock;
use crate::error::{LogError, LogResult};
use crate::log::{AppendInfo, Chunks, FlushPolicy, Log, LogRead, PendingFlush};
use crate::position::{LeaderEpoch, Offset};
use bytes::Bytes;
use std::fmt;
use std::future::Future;
use std::io;
use std::pin::Pin;
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
        /// Told as soon as the records are written (readable, maybe not
        /// durable); dropped unsent if the append fails.
        written: oneshot::Sender<AppendInfo>,
        reply: oneshot::Sender<LogResult<AppendInfo>>,
    },
    AppendFollower {
        records: Bytes,
        fence: Option<Fence>,
        reply: oneshot::Sender<LogResult<AppendInfo>>,
    },
    /// Any other work on the log, in queue order after every earlier append is
    /// durable; `blocking` if it may wait on the disk (see
    /// [`LogHandle::with_blocking`]).
    With { job: Job, blocking: bool },
    /// Close the log, delete its files, and stop.
    Delete {
        reply: oneshot::Sender<LogResult<()>>,
    },
    Read {
        from: Offset,
        max_bytes: usize,
        upper_bound: Offset,
        reply: oneshot::Sender<LogResult<LogRead<Chunks>>>,
    },
    Flush {
        reply: oneshot::Sender<LogResult<Offset>>,
    },
}

/// The second step of [`LogHandle::append_as_leader_staged`].
#[derive(Debug)]
pub struct Durable(oneshot::Receiver<LogResult<AppendInfo>>);

impl Durable {
    /// Ends once the append is durable (as the flush policy has it), or with
    /// why it is not.
    pub async fn wait(self) -> LogResult<AppendInfo> {
        self.0.await.map_err(|_| LogError::WriterStopped)?
    }
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
        syncing: None,
    };
    let task = tokio::spawn(writer.run(rx));
    (LogHandle { tx, stats }, task)
}

impl fmt::Debug for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Request::AppendLeader { .. } => "AppendLeader",
            Request::AppendFollower { .. } => "AppendFollower",
            Request::With { .. } => "With",
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
        let (_, durable) = self.append_as_leader_staged(records, epoch, fence).await?;
        durable.wait().await
    }

    /// [`append_as_leader_fenced`](Self::append_as_leader_fenced) in two
    /// steps: returns once the records are written (readable, not yet
    /// durable), with what ends once they are durable. A leader serves its
    /// followers in between, so its fsync and their fetch overlap.
    pub async fn append_as_leader_staged(
        &self,
        records: Bytes,
        epoch: LeaderEpoch,
        fence: Option<Fence>,
    ) -> LogResult<(AppendInfo, Durable)> {
        let (written, written_rx) = oneshot::channel();
        let (reply, durable) = oneshot::channel();
        self.tx
            .send(Request::AppendLeader {
                records,
                epoch,
                fence,
                written,
                reply,
            })
            .await
            .map_err(|_| LogError::WriterStopped)?;
        match written_rx.await {
            Ok(info) => Ok((info, Durable(durable))),
            // Not written: the reply says why.
            Err(_) => Err(match durable.await {
                Ok(Err(e)) => e,
                Ok(Ok(_)) | Err(_) => LogError::WriterStopped,
            }),
        }
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
        self.with_job(job, false).await
    }

    /// As [`with`](Self::with), for a job that may wait on the disk for
    /// long (a retention or compaction pass): on a disk under a
    /// multi-threaded runtime it runs as blocking code, so the runtime moves
    /// its other tasks (the network, other partitions' writers) to another
    /// thread meanwhile instead of leaving them behind it. Not for short
    /// jobs that come in bursts (a failover's epoch checkpoints): a thread
    /// handed over per job costs them more than it saves.
    pub async fn with_blocking<T: Send + 'static>(
        &self,
        job: impl FnOnce(&mut Log) -> T + Send + 'static,
    ) -> LogResult<T> {
        self.with_job(job, true).await
    }

    async fn with_job<T: Send + 'static>(
        &self,
        job: impl FnOnce(&mut Log) -> T + Send + 'static,
        blocking: bool,
    ) -> LogResult<T> {
        let (reply, rx) = oneshot::channel();
        let job: Job = Box::new(move |log| {
            let _ = reply.send(job(log));
        });
        self.tx
            .send(Request::With { job, blocking })
            .await
            .map_err(|_| LogError::WriterStopped)?;
        rx.await.map_err(|_| LogError::WriterStopped)
    }

    /// Closes the log and deletes its files and directory; the writer stops and
    /// every later call gets [`LogError::WriterStopped`].
    pub async fn delete(&self) -> LogResult<()> {
        self.call(|reply| Request::Delete { reply }).await
    }

    /// Reads (see [`Log::read`]); batches read from several buffers are
    /// joined here, not on the writer.
    pub async fn read(
        &self,
        from: Offset,
        max_bytes: usize,
        upper_bound: Offset,
    ) -> LogResult<LogRead> {
        self.read_chunks(from, max_bytes, upper_bound)
            .await
            .map(LogRead::joined)
    }

    /// Reads, the batches left in the buffers they were read from (see
    /// [`Log::read_chunks`]).
    pub async fn read_chunks(
        &self,
        from: Offset,
        max_bytes: usize,
        upper_bound: Offset,
    ) -> LogResult<LogRead<Chunks>> {
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

type Waiter = (AppendInfo, oneshot::Sender<LogResult<AppendInfo>>);

/// An fsync running while the writer goes on, and the appends it makes durable.
struct InFlight {
    flush: PendingFlush,
    waiters: Vec<Waiter>,
    done: Pin<Box<dyn Future<Output = io::Result<()>> + Send>>,
}

struct Writer {
    log: Log,
    clock: Arc<dyn Clock>,
    stats: Arc<WriterStats>,
    /// Appends done but not yet acknowledged: they wait for the next fsync.
    waiting: Vec<Waiter>,
    /// The fsync under way, if any. Only one runs at a time; the appends that
    /// arrive meanwhile are written and share the next one.
    syncing: Option<InFlight>,
}

enum Event {
    Request(Option<Request>),
    Synced(io::Result<()>),
    Tick,
}

impl Writer {
    async fn run(mut self, mut rx: mpsc::Receiver<Request>) -> LogResult<()> {
        let mut ticker = match self.log.config().flush {
            FlushPolicy::Periodic { interval, .. } => Some(tokio::time::interval(interval)),
            _ => None,
        };
        loop {
            let event = tokio::select! {
                biased;
                synced = sync_done(&mut self.syncing) => Event::Synced(synced),
                request = rx.recv() => Event::Request(request),
                _ = tick(&mut ticker) => Event::Tick,
            };
            match event {
                Event::Synced(synced) => self.finish_sync(synced),
                Event::Tick => self.maybe_flush(),
                Event::Request(None) => break,
                Event::Request(Some(first)) => {
                    let mut delete = self.handle(first).await;
                    let mut taken = 1;
                    while delete.is_none() && taken < MAX_GROUP {
                        let Ok(request) = rx.try_recv() else { break };
                        delete = self.handle(request).await;
                        taken += 1;
                    }
                    if let Some(reply) = delete {
                        self.settle().await;
                        rx.close();
                        let now_ms = self.clock.now_ms();
                        // On a disk, the directory is renamed away and its
                        // files removed later, off the runtime and off the
                        // caller's path: a large log takes seconds to remove
                        // (see `Storage::remove_dead_file`).
                        let deleted = if self.log.syncs_block() {
                            let log = self.log;
                            match tokio::task::spawn_blocking(move || log.delete_later(now_ms))
                                .await
                            {
                                Ok(Ok(retired)) => {
                                    drop(tokio::task::spawn_blocking(move || retired.remove()));
                                    Ok(())
                                }
                                Ok(Err(e)) => Err(e),
                                Err(_) => Err(LogError::WriterStopped),
                            }
                        } else {
                            self.log.delete(now_ms)
                        };
                        let _ = reply.send(deleted);
                        return Ok(());
                    }
                }
            }
            if self.syncing.is_none() {
                self.start_sync();
            }
        }
        self.settle().await;
        self.log.close(self.clock.now_ms())
    }

    /// Carries out one request; a `Delete` is handed back for the loop to
    /// finish once every append is durable.
    async fn handle(&mut self, request: Request) -> Option<oneshot::Sender<LogResult<()>>> {
        match request {
            Request::AppendLeader {
                records,
                epoch,
                fence,
                written,
                reply,
            } => {
                let result = match fence.filter(|f| !f.holds()) {
                    Some(_) => Err(LogError::Fenced),
                    None => {
                        self.rolling(records.len(), |log| log.append_as_leader(&records, epoch))
                    }
                };
                if let Ok(info) = &result {
                    let _ = written.send(*info);
                }
                self.after_append(result, reply);
            }
            Request::AppendFollower {
                records,
                fence,
                reply,
            } => {
                let result = match fence.filter(|f| !f.holds()) {
                    Some(_) => Err(LogError::Fenced),
                    None => self.rolling(records.len(), |log| log.append_as_follower(&records)),
                };
                self.after_append(result, reply);
            }
            Request::With { job, blocking } => {
                self.settle().await;
                if blocking && self.off_the_runtime() {
                    tokio::task::block_in_place(|| job(&mut self.log));
                } else {
                    job(&mut self.log);
                }
                self.remove_retired();
            }
            Request::Delete { reply } => return Some(reply),
            // Reads need no fsync: they see what was written, durable or not,
            // and their callers bound them (a leader serves followers only
            // what it counted, consumers only what is committed).
            Request::Read {
                from,
                max_bytes,
                upper_bound,
                reply,
            } => {
                let _ = reply.send(self.log.read_chunks(from, max_bytes, upper_bound));
            }
            Request::Flush { reply } => {
                self.settle().await;
                self.stats.fsyncs.fetch_add(1, Ordering::Relaxed);
                let _ = reply.send(self.log.flush(self.clock.now_ms()));
            }
        }
        None
    }

    /// Runs an append of `incoming` bytes. One that rolls the segment syncs
    /// four times in a row (the sealed segment, its index files, the
    /// directory): on a disk under a multi-threaded runtime it runs as
    /// blocking code, so the runtime moves its other tasks (the network,
    /// other partitions' writers) to another thread meanwhile instead of
    /// leaving them behind the disk. Any other append only copies into
    /// memory and runs in place.
    fn rolling<T>(&mut self, incoming: usize, append: impl FnOnce(&mut Log) -> T) -> T {
        if self.log.rolls_for_size(incoming as u64) && self.off_the_runtime() {
            tokio::task::block_in_place(|| append(&mut self.log))
        } else {
            append(&mut self.log)
        }
    }

    /// Whether work that waits on the disk should run as blocking code: the
    /// log's syncs block (a real disk, not the simulator's) and the runtime
    /// has other threads to hand its tasks to.
    fn off_the_runtime(&self) -> bool {
        self.log.syncs_block()
            && tokio::runtime::Handle::try_current()
                .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread)
    }

    /// Removes the files of segments the last job deleted (retention, a
    /// truncation): on a disk, on a blocking thread, since unlinking 1 GiB of
    /// segments takes hundreds of milliseconds and appends must not wait
    /// behind it; in place on a store that does not block (the simulator).
    fn remove_retired(&mut self) {
        let Some(retired) = self.log.take_retired() else {
            return;
        };
        if self.log.syncs_block() {
            drop(tokio::task::spawn_blocking(move || retired.remove()));
        } else {
            retired.remove();
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

    /// Begins one fsync for every append waiting, unless none is (then the
    /// flush policy may still want one). On a storage whose syncs block, it
    /// runs on a blocking thread: meanwhile the writer appends (into the
    /// page cache) and serves reads, so neither waits behind the disk, and
    /// the runtime's worker threads stay free for the network.
    fn start_sync(&mut self) {
        if self.waiting.is_empty() {
            self.maybe_flush();
            return;
        }
        let waiters = std::mem::take(&mut self.waiting);
        let flush = match self.log.begin_flush() {
            Ok(Some(flush)) => flush,
            // Durable already (a With job's flush got there first).
            Ok(None) => {
                for (info, reply) in waiters {
                    let _ = reply.send(Ok(info));
                }
                return;
            }
            Err(e) => {
                let reason = format!("the append is not durable: {e}");
                for (_, reply) in waiters {
                    let _ = reply.send(Err(LogError::Failed {
                        dir: self.log.dir().to_path_buf(),
                        reason: reason.clone(),
                    }));
                }
                return;
            }
        };
        self.stats.fsyncs.fetch_add(1, Ordering::Relaxed);
        let sync = flush.clone();
        let done: Pin<Box<dyn Future<Output = io::Result<()>> + Send>> = if self.log.syncs_block() {
            Box::pin(async move {
                tokio::task::spawn_blocking(move || sync.run())
                    .await
                    .unwrap_or_else(|e| {
                        Err(io::Error::other(format!("the fsync did not finish: {e}")))
                    })
            })
        } else {
            let latency = self.log.sync_latency();
            Box::pin(async move {
                if !latency.is_zero() {
                    tokio::time::sleep(latency).await;
                }
                sync.run()
            })
        };
        self.syncing = Some(InFlight {
            flush,
            waiters,
            done,
        });
    }

    /// The fsync under way finished: its appends are acknowledged, or, if it
    /// failed, none of them is.
    fn finish_sync(&mut self, synced: io::Result<()>) {
        let Some(InFlight { flush, waiters, .. }) = self.syncing.take() else {
            return;
        };
        let flushed = self.log.finish_flush(flush, synced, self.clock.now_ms());
        for (info, reply) in waiters {
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

    /// Waits until every append so far is durable and acknowledged (or failed).
    async fn settle(&mut self) {
        loop {
            if self.syncing.is_none() {
                self.start_sync();
            }
            if self.syncing.is_none() {
                return;
            }
            let synced = sync_done(&mut self.syncing).await;
            self.finish_sync(synced);
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

/// The outcome of the fsync under way; never ready while there is none.
async fn sync_done(syncing: &mut Option<InFlight>) -> io::Result<()> {
    match syncing {
        Some(in_flight) => (&mut in_flight.done).await,
        None => std::future::pending().await,
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
