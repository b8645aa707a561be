//! Partition replicas driven by hand, deterministically: leaders and followers
//! are real [`Partition`]s over in-memory disks, and a "fetch" is the leader's
//! `replica_fetch` answer handed to the follower's `apply_fetched`, exactly
//! what the fetcher and the Replication service do over gRPC. The divergence
//! cases are the ones Kafka's replication TLA+ description and KIPs 101, 279
//! and 320 name.

use crate::support::*;
use bytes::Bytes;
use raftline_broker::clock::TokioClock;
use raftline_broker::log::LogConfig;
use raftline_broker::metadata::{BrokerId, PartitionInfo};
use raftline_broker::replica::{
    Acks, FollowerFetch, Partition, ReplicaError, ReplicaSettings, Transition,
};
use raftline_broker::storage::MemStorage;
use raftline_broker::{LeaderEpoch, Offset, TopicPartition};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tracing::info;

const SECOND: Duration = Duration::from_secs(1);

/// One broker's replica of `orders-0` on its own in-memory disk.
struct Replica {
    id: u32,
    disk: MemStorage,
    partition: Arc<Partition>,
    /// The role generation of its current follower role.
    generation: u64,
}

fn tp() -> TopicPartition {
    TopicPartition {
        topic: "orders".into(),
        partition: 0,
    }
}

fn open_on(id: u32, disk: MemStorage) -> Replica {
    let partition = Partition::open(
        tp(),
        1,
        BrokerId(id),
        Arc::new(disk.clone()),
        PathBuf::from("/data/orders-0"),
        LogConfig::default(),
        settings(2),
        Arc::new(TokioClock::starting_at(1_000_000)),
    )
    .unwrap();
    Replica {
        id,
        disk,
        partition,
        generation: 0,
    }
}

fn settings(min_insync: usize) -> ReplicaSettings {
    ReplicaSettings {
        min_insync,
        lag_max_ms: 10_000,
    }
}

fn info(leader: Option<u32>, epoch: u32, replicas: &[u32], isr: &[u32]) -> PartitionInfo {
    PartitionInfo {
        replicas: replicas.iter().copied().map(BrokerId).collect(),
        isr: isr.iter().copied().map(BrokerId).collect(),
        leader: leader.map(BrokerId),
        leader_epoch: LeaderEpoch(epoch),
        partition_epoch: epoch,
    }
}

impl Replica {
    /// Applies a partition record; remembers the follower generation.
    async fn apply(&mut self, record: PartitionInfo, min_insync: usize) -> Transition {
        let t = self
            .partition
            .apply(record, settings(min_insync))
            .await
            .unwrap();
        if let Transition::Follow { generation, .. } = t {
            self.generation = generation;
        }
        t
    }

    /// Crash: the disk keeps only what was synced; the replica reopens.
    fn crash_and_reopen(&mut self) {
        self.partition.stop();
        self.disk.crash();
        *self = open_on(self.id, self.disk.clone());
    }

    /// Everything in the log, read directly.
    async fn log(&self) -> Vec<(i64, String)> {
        let read = self
            .partition
            .log()
            .read(Offset(0), 1 << 20, Offset(u64::MAX))
            .await
            .unwrap();
        decode(&read.records)
    }

    /// Committed records, as a consumer of this leader sees them.
    async fn committed(&self) -> Vec<(i64, String)> {
        let read = self
            .partition
            .fetch(Offset(0), None, 1 << 20)
            .await
            .unwrap();
        decode(&read.records.into_bytes())
    }
}

/// The fetch `follower` sends next.
async fn next_fetch(follower: &Replica) -> FollowerFetch {
    let position = follower.partition.follower_position().await.unwrap();
    FollowerFetch {
        follower: BrokerId(follower.id),
        broker_epoch: 1,
        current_leader_epoch: follower.partition.progress().leader_epoch,
        fetch_offset: position.fetch_offset,
        last_fetched_epoch: position.last_fetched_epoch,
    }
}

/// One follower fetch from `leader`; returns whether anything changed
/// (records appended or a divergence truncated).
async fn fetch_once(leader: &Replica, follower: &Replica) -> bool {
    let fetch = next_fetch(follower).await;
    let read = leader
        .partition
        .replica_fetch(fetch, 1 << 20, |_| {})
        .await
        .unwrap();
    let changed = read.diverging.is_some() || !read.records.is_empty();
    follower
        .partition
        .apply_fetched(follower.generation, read)
        .await
        .unwrap();
    changed
}

/// The follower's fetch reaches the leader, but the answer is lost.
async fn fetch_unanswered(leader: &Replica, follower: &Replica) {
    let fetch = next_fetch(follower).await;
    leader
        .partition
        .replica_fetch(fetch, 1 << 20, |_| {})
        .await
        .unwrap();
}

/// Fetches until the follower has caught up, then once more so the leader
/// learns its log end.
async fn catch_up(leader: &Replica, follower: &Replica) {
    for _ in 0..20 {
        if !fetch_once(leader, follower).await {
            return;
        }
    }
    panic!("follower {} did not catch up", follower.id);
}

fn value(tag: &str) -> Bytes {
    batch(1, 0, tag)
}

fn values(records: &[(i64, String)]) -> Vec<String> {
    records.iter().map(|(_, v)| v.clone()).collect()
}

#[tokio::test(start_paused = true)]
async fn acks_all_waits_for_the_follower_and_consumers_never_see_uncommitted_data() {
    let (mut a, mut b) = (open_on(1, MemStorage::new()), open_on(2, MemStorage::new()));
    a.apply(info(Some(1), 1, &[1, 2], &[1, 2]), 2).await;
    b.apply(info(Some(1), 1, &[1, 2], &[1, 2]), 2).await;

    let leader = a.partition.clone();
    let produce =
        tokio::spawn(async move { leader.produce(value("m"), Acks::All, 10 * SECOND).await });
    // Let the append land in the leader's log.
    while a.partition.progress().log_end == Offset(0) {
        tokio::task::yield_now().await;
    }
    info!("appended on the leader only: not committed, not visible, not acknowledged");
    assert_eq!(a.log().await.len(), 1);
    assert!(a.committed().await.is_empty());
    assert!(!produce.is_finished());

    info!("the follower fetches it, then its next fetch reports its log end");
    assert!(fetch_once(&a, &b).await);
    assert!(!fetch_once(&a, &b).await);
    let produced = tokio::time::timeout(SECOND, produce)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(produced.base_offset, Offset(0));
    assert_eq!(values(&a.committed().await), ["m-0"]);
    assert_eq!(a.partition.progress().high_watermark, Offset(1));
    assert_eq!(b.partition.progress().high_watermark, Offset(1));
}

#[tokio::test(start_paused = true)]
async fn acks_all_below_min_insync_replicas_appends_nothing() {
    let mut a = open_on(1, MemStorage::new());
    // The ISR has shrunk to the leader alone; min.insync.replicas is 2.
    a.apply(info(Some(1), 1, &[1, 2, 3], &[1]), 2).await;
    let refused = a
        .partition
        .produce(value("x"), Acks::All, SECOND)
        .await
        .unwrap_err();
    assert!(
        matches!(
            refused,
            ReplicaError::NotEnoughReplicas { isr: 1, min: 2, .. }
        ),
        "{refused:?}"
    );
    assert!(a.log().await.is_empty(), "nothing may be appended");
    info!("acks=1 does not need the ISR");
    let ok = a
        .partition
        .produce(value("y"), Acks::Leader, SECOND)
        .await
        .unwrap();
    assert_eq!(ok.base_offset, Offset(0));
    info!("but the high watermark does not move under min.insync (KIP-966)");
    assert!(a.committed().await.is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_follower_only_serves_as_leader_and_stale_epochs_are_fenced() {
    let (mut a, mut b) = (open_on(1, MemStorage::new()), open_on(2, MemStorage::new()));
    a.apply(info(Some(1), 3, &[1, 2], &[1, 2]), 1).await;
    b.apply(info(Some(1), 3, &[1, 2], &[1, 2]), 1).await;
    let not_leader = b
        .partition
        .produce(value("x"), Acks::Leader, SECOND)
        .await
        .unwrap_err();
    assert!(
        matches!(
            not_leader,
            ReplicaError::NotLeader {
                leader: Some(BrokerId(1)),
                ..
            }
        ),
        "{not_leader:?}"
    );
    let stale = a
        .partition
        .fetch(Offset(0), Some(LeaderEpoch(2)), 1024)
        .await
        .unwrap_err();
    assert!(
        matches!(stale, ReplicaError::FencedLeaderEpoch { .. }),
        "{stale:?}"
    );
    let newer = a
        .partition
        .fetch(Offset(0), Some(LeaderEpoch(4)), 1024)
        .await
        .unwrap_err();
    assert!(
        matches!(newer, ReplicaError::UnknownLeaderEpoch { .. }),
        "{newer:?}"
    );
}

/// A follower learns the high watermark a fetch late; elected, it does not
/// show consumers its lower high watermark (they saw more from the old
/// leader) until it has committed what it was elected with.
#[tokio::test(start_paused = true)]
async fn a_new_leader_serves_consumers_only_once_its_high_watermark_reaches_its_election_end() {
    let (mut a, mut b) = (open_on(1, MemStorage::new()), open_on(2, MemStorage::new()));
    a.apply(info(Some(1), 1, &[1, 2], &[1, 2]), 1).await;
    b.apply(info(Some(1), 1, &[1, 2], &[1, 2]), 1).await;
    a.partition
        .produce(value("x"), Acks::Leader, SECOND)
        .await
        .unwrap();
    fetch_once(&a, &b).await;
    // a counts b's log end on b's next fetch, whose answer is lost: a's
    // consumers have seen high watermark 1, b still has 0.
    fetch_unanswered(&a, &b).await;
    assert_eq!(a.partition.progress().high_watermark, Offset(1));
    assert_eq!(b.partition.progress().high_watermark, Offset(0));

    b.apply(info(Some(2), 2, &[1, 2], &[1, 2]), 1).await;
    let early = b.partition.fetch(Offset(0), None, 1024).await.unwrap_err();
    assert!(
        matches!(early, ReplicaError::OffsetNotAvailable { .. }),
        "{early:?}"
    );
    let listed = b.partition.list_offset(-1).await.unwrap_err();
    assert!(
        matches!(listed, ReplicaError::OffsetNotAvailable { .. }),
        "{listed:?}"
    );
    a.apply(info(Some(2), 2, &[1, 2], &[1, 2]), 1).await;
    catch_up(&b, &a).await;
    let read = b.partition.fetch(Offset(0), None, 1024).await.unwrap();
    assert_eq!(read.high_watermark, Offset(1));
    assert_eq!(
        values(&decode(&read.records.into_bytes())),
        vec!["x-0".to_string()]
    );
}

/// A follower back in sync makes the leader propose its return to the ISR.
/// The leader counts the change pending from then on, so it hands it over
/// before reading the log: a fetch dropped mid-read (a long poll whose client
/// went away) must not lose it, or the ISR stays frozen for ever (found by
/// the simulator, seeds 1068 and 1399).
#[tokio::test(start_paused = true)]
async fn an_isr_expansion_is_handed_over_before_the_fetch_reads_the_log() {
    let (mut a, mut b) = (open_on(1, MemStorage::new()), open_on(2, MemStorage::new()));
    a.apply(info(Some(1), 1, &[1, 2], &[1]), 1).await;
    b.apply(info(Some(1), 1, &[1, 2], &[1]), 1).await;
    a.partition
        .produce(value("x"), Acks::Leader, SECOND)
        .await
        .unwrap();
    fetch_once(&a, &b).await;
    // b is at the high watermark now: this fetch proposes {1, 2}, and its
    // caller goes away while the log read is in flight.
    let fetch = next_fetch(&b).await;
    let mut proposed = None;
    let dropped = tokio::time::timeout(
        Duration::ZERO,
        a.partition
            .replica_fetch(fetch, 1 << 20, |p| proposed = Some(p)),
    )
    .await;
    assert!(dropped.is_err(), "the fetch was dropped before its answer");
    let proposal = proposed.expect("the proposal was handed over");
    assert_eq!(
        proposal.change.new_isr,
        [BrokerId(1), BrokerId(2)].into_iter().collect()
    );
}

/// A lagging controller replays old partition records (a broker's new
/// metadata subscription): a replica never goes back to an older role.
#[tokio::test(start_paused = true)]
async fn replayed_older_metadata_never_takes_a_replica_back_to_an_old_role() {
    let mut a = open_on(1, MemStorage::new());
    a.apply(info(Some(2), 3, &[1, 2], &[1, 2]), 1).await;
    assert!(!a.partition.progress().leader);
    // Epoch 2, when broker 1 led: stale, ignored.
    let t = a.apply(info(Some(1), 2, &[1, 2], &[1, 2]), 1).await;
    assert_eq!(t, Transition::Unchanged);
    let progress = a.partition.progress();
    assert!(!progress.leader);
    assert_eq!(progress.leader_epoch, LeaderEpoch(3));
    let refused = a
        .partition
        .produce(value("x"), Acks::Leader, SECOND)
        .await
        .unwrap_err();
    assert!(
        matches!(refused, ReplicaError::NotLeader { .. }),
        "{refused:?}"
    );
    // A newer epoch still applies.
    let t = a.apply(info(Some(1), 4, &[1, 2], &[1, 2]), 1).await;
    assert_eq!(t, Transition::Lead);
}

/// Leader A appends a suffix nobody else has, then fails; B leads and writes
/// on; A comes back as a follower and must cut its suffix (the follower's log
/// end is beyond the leader's end of that epoch).
#[tokio::test(start_paused = true)]
async fn a_divergent_uncommitted_suffix_is_truncated_after_failover() {
    let (mut a, mut b) = (open_on(1, MemStorage::new()), open_on(2, MemStorage::new()));
    a.apply(info(Some(1), 1, &[1, 2], &[1, 2]), 1).await;
    b.apply(info(Some(1), 1, &[1, 2], &[1, 2]), 1).await;
    a.partition
        .produce(value("committed"), Acks::Leader, SECOND)
        .await
        .unwrap();
    catch_up(&a, &b).await;
    for tag in ["lost-1", "lost-2"] {
        a.partition
            .produce(value(tag), Acks::Leader, SECOND)
            .await
            .unwrap();
    }
    assert_eq!(a.log().await.len(), 3);

    info!("A is cut off; B leads epoch 2 and takes new writes");
    b.apply(info(Some(2), 2, &[1, 2], &[2]), 1).await;
    b.partition
        .produce(value("new"), Acks::Leader, SECOND)
        .await
        .unwrap();
    info!("A returns as a follower of B");
    a.apply(info(Some(2), 2, &[1, 2], &[2]), 1).await;
    catch_up(&b, &a).await;
    assert_eq!(values(&a.log().await), ["committed-0", "new-0"]);
    assert_eq!(a.log().await, b.log().await, "the logs agree");
}

/// KIP-279: leadership moves twice before the first new leader writes
/// anything. A holds an epoch-1 suffix; B led epoch 2 without writing; C leads
/// epoch 3. Both A and B must end up with C's log.
#[tokio::test(start_paused = true)]
async fn fast_double_failover_leaves_every_replica_with_the_last_leaders_log() {
    let mut a = open_on(1, MemStorage::new());
    let mut b = open_on(2, MemStorage::new());
    let mut c = open_on(3, MemStorage::new());
    let all = [1, 2, 3];
    a.apply(info(Some(1), 1, &all, &all), 1).await;
    b.apply(info(Some(1), 1, &all, &all), 1).await;
    c.apply(info(Some(1), 1, &all, &all), 1).await;
    a.partition
        .produce(value("base"), Acks::Leader, SECOND)
        .await
        .unwrap();
    catch_up(&a, &b).await;
    catch_up(&a, &c).await;
    a.partition
        .produce(value("a-only"), Acks::Leader, SECOND)
        .await
        .unwrap();

    info!("epoch 2: B leads (records its epoch start) and fails at once");
    b.apply(info(Some(2), 2, &all, &[2, 3]), 1).await;
    info!("epoch 3: C leads and writes");
    c.apply(info(Some(3), 3, &all, &[3]), 1).await;
    c.partition
        .produce(value("c"), Acks::Leader, SECOND)
        .await
        .unwrap();
    a.apply(info(Some(3), 3, &all, &[3]), 1).await;
    b.apply(info(Some(3), 3, &all, &[3]), 1).await;
    catch_up(&c, &a).await;
    catch_up(&c, &b).await;
    assert_eq!(values(&c.log().await), ["base-0", "c-0"]);
    assert_eq!(a.log().await, c.log().await);
    assert_eq!(b.log().await, c.log().await);
}

/// KIP-101: a follower that restarts before it learned the high watermark
/// must not cut its log to it, or a record acknowledged to a producer is lost
/// when that follower is elected next.
#[tokio::test(start_paused = true)]
async fn restart_then_elect_keeps_every_acknowledged_record() {
    let (mut a, mut b) = (open_on(1, MemStorage::new()), open_on(2, MemStorage::new()));
    a.apply(info(Some(1), 1, &[1, 2], &[1, 2]), 2).await;
    b.apply(info(Some(1), 1, &[1, 2], &[1, 2]), 2).await;
    let leader = a.partition.clone();
    let acked =
        tokio::spawn(async move { leader.produce(value("acked"), Acks::All, 10 * SECOND).await });
    while a.partition.progress().log_end == Offset(0) {
        tokio::task::yield_now().await;
    }
    fetch_once(&a, &b).await; // B has the record (fsynced), HW still 0 on B
    fetch_unanswered(&a, &b).await; // A learns B's log end: HW 1, acknowledged
    tokio::time::timeout(SECOND, acked)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(b.partition.progress().high_watermark, Offset(0));

    info!("B restarts (power loss: only synced data survives), then A dies and B is elected");
    b.crash_and_reopen();
    b.apply(info(Some(2), 2, &[1, 2], &[2]), 1).await;
    assert_eq!(values(&b.log().await), ["acked-0"]);
    assert_eq!(values(&b.committed().await), ["acked-0"]);
    info!("A returns and follows B: nothing to cut, the logs agree");
    a.crash_and_reopen();
    a.apply(info(Some(2), 2, &[1, 2], &[2]), 1).await;
    catch_up(&b, &a).await;
    assert_eq!(a.log().await, b.log().await);
}

/// An idempotent producer's retry after a failover is answered with the
/// first append's offsets: the follower kept the producer state.
#[tokio::test(start_paused = true)]
async fn a_retried_batch_lands_once_across_a_leader_change() {
    let (mut a, mut b) = (open_on(1, MemStorage::new()), open_on(2, MemStorage::new()));
    a.apply(info(Some(1), 1, &[1, 2], &[1, 2]), 1).await;
    b.apply(info(Some(1), 1, &[1, 2], &[1, 2]), 1).await;
    let first = producer_batch((42, 0, 0), 3, "p");
    let stored = a
        .partition
        .produce(first.clone(), Acks::Leader, SECOND)
        .await
        .unwrap();
    catch_up(&a, &b).await;
    info!("the answer was lost; B takes over; the producer retries there");
    b.apply(info(Some(2), 2, &[1, 2], &[2]), 1).await;
    let retried = b
        .partition
        .produce(first, Acks::Leader, SECOND)
        .await
        .unwrap();
    assert_eq!(retried.base_offset, stored.base_offset);
    assert_eq!(b.log().await.len(), 3, "stored once");
    info!("the next batch follows; a gap is refused and changes nothing");
    b.partition
        .produce(producer_batch((42, 0, 3), 1, "q"), Acks::Leader, SECOND)
        .await
        .unwrap();
    let gap = b
        .partition
        .produce(producer_batch((42, 0, 9), 1, "r"), Acks::Leader, SECOND)
        .await
        .unwrap_err();
    assert!(
        matches!(gap, ReplicaError::OutOfOrderSequence { .. }),
        "{gap:?}"
    );
    assert_eq!(b.log().await.len(), 4);
}

#[tokio::test(start_paused = true)]
async fn list_offsets_answers_earliest_latest_and_by_time_below_the_high_watermark() {
    let mut a = open_on(1, MemStorage::new());
    a.apply(info(Some(1), 1, &[1], &[1]), 1).await;
    for (i, ts) in [1_000, 2_000, 3_000].into_iter().enumerate() {
        a.partition
            .produce(
                batch_at(0, 0, 2, 0, ts, &format!("t{i}")),
                Acks::All,
                SECOND,
            )
            .await
            .unwrap();
    }
    // Offsets 0-1 at 1000 ms, 2-3 at 2000 ms, 4-5 at 3000 ms.
    let p = &a.partition;
    assert_eq!(p.list_offset(-2).await.unwrap().0, Some(Offset(0)));
    assert_eq!(p.list_offset(-1).await.unwrap().0, Some(Offset(6)));
    assert_eq!(
        p.list_offset(1_500).await.unwrap(),
        (Some(Offset(2)), 2_000, LeaderEpoch(1))
    );
    assert_eq!(p.list_offset(9_000).await.unwrap().0, None);
    assert!(matches!(
        p.list_offset(-7).await,
        Err(ReplicaError::InvalidRequest(_))
    ));

    info!("records above the high watermark are not found by time");
    let mut b = open_on(2, MemStorage::new());
    b.apply(info(Some(2), 1, &[2, 3], &[2, 3]), 1).await;
    b.partition
        .produce(batch_at(0, 0, 1, 0, 5_000, "late"), Acks::Leader, SECOND)
        .await
        .unwrap();
    assert_eq!(
        b.partition.list_offset(-1).await.unwrap().0,
        Some(Offset(0))
    );
    assert_eq!(b.partition.list_offset(4_000).await.unwrap().0, None);
}
