//! [`Producer`]: records to partitions (murmur2 of the key, or round-robin
//! without one), each partition fed by its own lane: a task that gathers
//! what is queued into batches and sends them in order, partitions
//! independent of each other (Kafka's record accumulator and sender); up to
//! 5 batches in flight per partition on the leader's ordered produce stream
//! when a backlog builds. Idempotent by default, as Kafka's producer is: a
//! producer id from the cluster and a sequence number per partition make a
//! retried batch land once.
//!
//! ```text
//! send / submit_all(records) ─> partition ─> lane p: queue ─> batch (≤ limits,
//!   after the linger) ─> Client::produce (retries inside) ─> each queued send learns its offsets
//! ```

use super::{
    encode_batch, partition_for_key, Acks, Client, ClientError, ProducerRecord, ProducerStamp,
};
use bytes::Bytes;
use futures_util::future::join_all;
use std::collections::{BTreeMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// Most records in one batch.
const MAX_BATCH_RECORDS: usize = 2_000;
/// About the most bytes in one batch (under the broker's 1 MiB limit).
const MAX_BATCH_BYTES: usize = 512 << 10;

/// Consecutive records of one send that landed in one partition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sent {
    /// The partition.
    pub partition: u32,
    /// The offset of the first (`None` with acks=0).
    pub base_offset: Option<u64>,
    /// How many, at consecutive offsets.
    pub count: usize,
}

/// What a lane answers for one queued send.
type Reply = oneshot::Sender<Result<Vec<Sent>, ClientError>>;

/// Records queued together for one partition, and who waits for them.
struct Chunk {
    /// Its number in the lane (set when the lane takes it).
    id: u64,
    records: Vec<ProducerRecord>,
    /// How many of `records` are in batches already.
    taken: usize,
    /// How many of those batches are acknowledged.
    acked: usize,
    sent: Vec<Sent>,
    reply: Reply,
}

/// How a producer's lanes batch and send.
#[derive(Clone)]
struct LaneConfig {
    client: Client,
    topic: String,
    acks: Acks,
    idempotent: bool,
    linger: Duration,
    max_records: usize,
    max_in_flight: usize,
}

/// A producer for one topic.
pub struct Producer {
    config: LaneConfig,
    partitions: u32,
    next: u32,
    lanes: BTreeMap<u32, mpsc::UnboundedSender<Chunk>>,
}

impl Producer {
    /// An idempotent producer for `topic` (which must exist).
    pub async fn new(client: Client, topic: &str, acks: Acks) -> Result<Producer, ClientError> {
        let partitions = u32::try_from(client.partitions(topic).await?.len()).unwrap_or(u32::MAX);
        Ok(Producer {
            config: LaneConfig {
                client,
                topic: topic.to_string(),
                acks,
                idempotent: true,
                linger: Duration::ZERO,
                max_records: MAX_BATCH_RECORDS,
                max_in_flight: MAX_IN_FLIGHT,
            },
            partitions: partitions.max(1),
            next: 0,
            lanes: BTreeMap::new(),
        })
    }

    /// Turns idempotence off (`enable.idempotence=false`): retries may then
    /// store a batch twice.
    pub fn without_idempotence(mut self) -> Self {
        self.config.idempotent = false;
        self
    }

    /// How long a partition's batch waits for more records after its first
    /// is queued (Kafka's `linger.ms`; 0 by default: a batch holds what
    /// queued while the previous one was in flight).
    pub fn with_linger(mut self, linger: Duration) -> Self {
        self.config.linger = linger;
        self
    }

    /// Most records in one partition's batch (Kafka's `batch.size`, counted
    /// in records; at most 2,000, and about 512 KiB whatever the count).
    pub fn with_batch_records(mut self, records: usize) -> Self {
        self.config.max_records = records.clamp(1, MAX_BATCH_RECORDS);
        self
    }

    /// Most batches in flight per partition (Kafka's
    /// `max.in.flight.requests.per.connection`: 5 by default, at most 5,
    /// 1 without idempotence). Above 1 the batches go on the leader's
    /// ordered produce stream, so they land in order; after a failure the
    /// lane resends from the first failed batch, in order. A second batch
    /// goes out only behind a full batch's worth of queued records (a
    /// backlog, after a stall); in a steady flow the next batch waits for
    /// the one in flight and grows meanwhile, which keeps requests few.
    pub fn with_max_in_flight(mut self, batches: usize) -> Self {
        self.config.max_in_flight = batches.clamp(1, MAX_IN_FLIGHT);
        self
    }

    /// The topic's partition count.
    pub fn partitions(&self) -> u32 {
        self.partitions
    }

    /// The partition a record goes to: its key's (Kafka's murmur2), or the
    /// next in turn.
    pub fn partition_for(&mut self, key: Option<&[u8]>) -> u32 {
        match key {
            Some(key) => partition_for_key(key, self.partitions),
            None => {
                let p = self.next % self.partitions;
                self.next = self.next.wrapping_add(1);
                p
            }
        }
    }

    /// Queues `records` for partition `p`'s lane; the answer comes once all
    /// are acknowledged (or one failed).
    fn enqueue(
        &mut self,
        p: u32,
        records: Vec<ProducerRecord>,
    ) -> oneshot::Receiver<Result<Vec<Sent>, ClientError>> {
        let (reply, answer) = oneshot::channel();
        let mut chunk = Chunk {
            id: 0,
            records,
            taken: 0,
            acked: 0,
            sent: Vec::new(),
            reply,
        };
        if let Some(lane) = self.lanes.get(&p) {
            match lane.send(chunk) {
                Ok(()) => return answer,
                // The lane ended (its task panicked): a new one takes over.
                Err(mpsc::error::SendError(back)) => chunk = back,
            }
        }
        let (tx, rx) = mpsc::unbounded_channel();
        let _ = tx.send(chunk);
        tokio::spawn(lane(self.config.clone(), p, rx));
        self.lanes.insert(p, tx);
        answer
    }

    /// Queues `records` in order without waiting (Kafka's `send(record)`,
    /// for many at once): the future resolves once all are
    /// acknowledged, with one entry per run of consecutive offsets in a
    /// partition, or with the error of one failed partition; how much of
    /// the rest landed is then unknown (the failed partition's lane starts
    /// over with a new producer id).
    pub fn submit_all(
        &mut self,
        records: Vec<ProducerRecord>,
    ) -> impl std::future::Future<Output = Result<Vec<Sent>, ClientError>> + Send + 'static {
        let mut by_partition: BTreeMap<u32, Vec<ProducerRecord>> = BTreeMap::new();
        for record in records {
            let p = self.partition_for(record.key.as_deref());
            by_partition.entry(p).or_default().push(record);
        }
        let answers: Vec<_> = by_partition
            .into_iter()
            .map(|(p, records)| self.enqueue(p, records))
            .collect();
        async move {
            let mut sent = Vec::new();
            let mut failure = None;
            for answer in join_all(answers).await {
                match answer.map_err(|_| lane_gone()).and_then(|r| r) {
                    Ok(batches) => sent.extend(batches),
                    Err(e) => failure = Some(e),
                }
            }
            match failure {
                Some(e) => Err(e),
                None => Ok(sent),
            }
        }
    }

    /// Queues `records` for partition `p` itself (Kafka's explicit
    /// partition), in order: the future resolves once all are acknowledged,
    /// with one entry per run of consecutive offsets.
    pub fn submit_to(
        &mut self,
        p: u32,
        records: Vec<ProducerRecord>,
    ) -> impl std::future::Future<Output = Result<Vec<Sent>, ClientError>> + Send + 'static {
        let answer = (p < self.partitions && !records.is_empty()).then(|| self.enqueue(p, records));
        let partitions = self.partitions;
        async move {
            match answer {
                Some(answer) => answer.await.map_err(|_| lane_gone())?,
                None if p >= partitions => Err(ClientError::Invalid(format!(
                    "partition {p} does not exist: the topic has {partitions}"
                ))),
                None => Ok(Vec::new()),
            }
        }
    }

    /// Sends `records` and returns once all are acknowledged:
    /// [`submit_all`](Self::submit_all), awaited.
    pub async fn send(&mut self, records: Vec<ProducerRecord>) -> Result<Vec<Sent>, ClientError> {
        self.submit_all(records).await
    }
}

fn lane_gone() -> ClientError {
    ClientError::Transport("the producer's partition lane ended before answering".into())
}

/// The bytes a record adds to a batch, about.
fn record_bytes(r: &ProducerRecord) -> usize {
    r.key.as_ref().map_or(0, |k| k.len()) + r.value.as_ref().map_or(0, |v| v.len()) + 16
}

/// The most batches an idempotent producer's lane may keep in flight: the
/// broker remembers each producer's last 5 batches, which lets a resend
/// after a failure be answered as a duplicate.
const MAX_IN_FLIGHT: usize = 5;

type Answer = Pin<Box<dyn Future<Output = Result<Option<u64>, ClientError>> + Send>>;
type Moved = Pin<Box<dyn Future<Output = ()> + Send>>;

/// A batch sent and not yet answered.
struct Flight {
    /// (chunk id, records) it holds, in order.
    parts: Vec<(u64, usize)>,
    /// The encoded batch, to resend as it is.
    batch: Bytes,
    answer: Answer,
    /// Ends when the partition's leader moved elsewhere (streamed batches:
    /// a leader that died without a word answers nothing).
    moved: Option<Moved>,
}

/// One partition's lane: gathers queued records into batches and sends
/// them in order: up to `max_in_flight` at once on the leader's ordered
/// produce stream (idempotent producers; a second batch only behind a full
/// batch's worth of records), or one at a time with the client's retries. After a failure it resends from the first failed batch,
/// in order, one at a time with retries; a batch that still fails fails
/// everything queued behind it too, and the lane starts over with a new
/// producer id (how much of the failed batch landed is unknown, so its
/// sequence cannot be reused).
struct Lane {
    config: LaneConfig,
    partition: u32,
    queue: VecDeque<Chunk>,
    next_chunk: u64,
    /// Records queued and not yet in a batch.
    untaken: usize,
    flights: VecDeque<Flight>,
    id: Option<(i64, i16)>,
    sequence: i32,
    /// A batch under the current producer id was acknowledged.
    confirmed: bool,
}

async fn lane(config: LaneConfig, partition: u32, mut rx: mpsc::UnboundedReceiver<Chunk>) {
    let mut lane = Lane {
        config,
        partition,
        queue: VecDeque::new(),
        next_chunk: 0,
        untaken: 0,
        flights: VecDeque::new(),
        id: None,
        sequence: 0,
        confirmed: false,
    };
    let window = if lane.config.idempotent {
        lane.config.max_in_flight
    } else {
        1
    };
    let mut open = true;
    loop {
        if lane.untaken == 0 && lane.flights.is_empty() {
            if !open {
                return;
            }
            match rx.recv().await {
                Some(chunk) => lane.push(chunk),
                None => return,
            }
            if !lane.config.linger.is_zero() {
                let until = tokio::time::Instant::now() + lane.config.linger;
                while lane.untaken < lane.config.max_records {
                    tokio::select! {
                        chunk = rx.recv() => match chunk {
                            Some(chunk) => lane.push(chunk),
                            None => break,
                        },
                        () = tokio::time::sleep_until(until) => break,
                    }
                }
            }
        }
        while let Ok(chunk) = rx.try_recv() {
            lane.push(chunk);
        }
        answer_done(&mut lane.queue);
        // A batch goes out when none is in flight. A second one only
        // behind a full batch's worth of records (a backlog, after a
        // stall: in a steady flow the next batch grows while one is in
        // flight), once the producer id's first batch is acknowledged (the
        // broker takes any sequence from an id it does not know, so a
        // second batch could land without a failed first), and only
        // behind streamed batches (a unary one is sent when polled).
        while lane.flights.is_empty()
            || (lane.flights.len() < window
                && lane.confirmed
                && lane.flights.iter().all(|f| f.moved.is_some())
                && lane.untaken >= lane.config.max_records)
        {
            if lane.untaken == 0 {
                break;
            }
            if let Err(e) = lane.launch(window > 1).await {
                lane.fail_all(e, &mut rx);
            }
        }
        let room = lane.flights.len() < window;
        // Then wait for the oldest batch's answer, its leader moving, or
        // (while the window has room) more records to batch.
        let Some(Flight { answer, moved, .. }) = lane.flights.front_mut() else {
            continue;
        };
        let moved = async {
            match moved.as_mut() {
                Some(moved) => moved.await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            result = answer => {
                if let Some(flight) = lane.flights.pop_front() {
                    match result {
                        Ok(base_offset) => lane.acked(&flight, base_offset),
                        Err(e) => lane.recover(flight, e, &mut rx).await,
                    }
                }
            }
            () = moved => {
                if let Some(flight) = lane.flights.pop_front() {
                    let e = ClientError::Transport("the partition's leader moved".into());
                    lane.recover(flight, e, &mut rx).await;
                }
            }
            chunk = rx.recv(), if open && room => match chunk {
                Some(chunk) => lane.push(chunk),
                None => open = false,
            },
        }
    }
}

impl Lane {
    fn push(&mut self, mut chunk: Chunk) {
        self.untaken += chunk.records.len() - chunk.taken;
        chunk.id = self.next_chunk;
        self.next_chunk += 1;
        self.queue.push_back(chunk);
    }

    /// Takes the next batch and sends it (streamed: on the leader's produce
    /// stream, else with the client's retries).
    async fn launch(&mut self, streamed: bool) -> Result<(), ClientError> {
        let config = &self.config;
        if config.idempotent && self.id.is_none() {
            self.id = Some(config.client.init_producer_id().await?);
            self.sequence = 0;
            self.confirmed = false;
        }
        let (records, parts) = take_batch(&mut self.queue, config.max_records);
        self.untaken -= records.len();
        let stamp = self.id.map(|(producer_id, producer_epoch)| ProducerStamp {
            producer_id,
            producer_epoch,
            base_sequence: self.sequence,
        });
        let batch = encode_batch(&records, stamp)?;
        // Sequences wrap to 0 after i32::MAX, as Kafka's do.
        let next = i64::from(self.sequence) + records.len() as i64;
        self.sequence = if next > i64::from(i32::MAX) {
            (next - i64::from(i32::MAX) - 1) as i32
        } else {
            next as i32
        };
        let (topic, p, acks) = (config.topic.clone(), self.partition, config.acks);
        let client = config.client.clone();
        let epoch = client.metadata().leader_epoch(&topic, p);
        let streamed = match streamed {
            true => client.produce_streamed(&topic, p, batch.clone(), acks).ok(),
            false => None,
        };
        let flight = match streamed {
            Some((leader, answer)) => Flight {
                parts,
                batch,
                answer: Box::pin(answer),
                moved: Some(Box::pin(async move {
                    client.leader_moved(&topic, p, &leader, epoch).await
                })),
            },
            None => Flight {
                parts,
                batch: batch.clone(),
                answer: Box::pin(async move { client.produce(&topic, p, batch, acks).await }),
                moved: None,
            },
        };
        self.flights.push_back(flight);
        Ok(())
    }

    /// A batch is acknowledged at `base_offset`: its records' sends learn
    /// where they landed; those complete are answered.
    fn acked(&mut self, flight: &Flight, base_offset: Option<u64>) {
        self.confirmed = true;
        let mut offset = base_offset;
        for &(id, n) in &flight.parts {
            // Chunk ids count up from the queue's front.
            let front = self.queue.front().map_or(0, |c| c.id);
            let at = usize::try_from(id.wrapping_sub(front)).unwrap_or(usize::MAX);
            if let Some(chunk) = self.queue.get_mut(at).filter(|c| c.id == id) {
                chunk.acked += n;
                chunk.sent.push(Sent {
                    partition: self.partition,
                    base_offset: offset,
                    count: n,
                });
            }
            offset = offset.map(|o| o + n as u64);
        }
        answer_done(&mut self.queue);
    }

    /// `failed` (the oldest batch in flight) failed with `e`: the batches
    /// after it were sent after it, so each is resent in order from it,
    /// one at a time with the client's retries (an idempotent batch that
    /// did land is answered with its first offsets). Without idempotence
    /// the client's retries are all there is.
    async fn recover(
        &mut self,
        failed: Flight,
        e: ClientError,
        rx: &mut mpsc::UnboundedReceiver<Chunk>,
    ) {
        if !self.config.idempotent {
            self.fail_all(e, rx);
            return;
        }
        tracing::debug!(partition = self.partition, error = %e, "a streamed batch failed; resending from it in order");
        let rest: Vec<Flight> = std::iter::once(failed)
            .chain(self.flights.drain(..))
            .collect();
        for flight in rest {
            let resent = self
                .config
                .client
                .produce(
                    &self.config.topic,
                    self.partition,
                    flight.batch.clone(),
                    self.config.acks,
                )
                .await;
            match resent {
                Ok(base_offset) => self.acked(&flight, base_offset),
                Err(e) => {
                    self.fail_all(e, rx);
                    return;
                }
            }
        }
    }

    /// Fails every queued send (and what is in flight) with `e`; the next
    /// batch starts with a new producer id.
    fn fail_all(&mut self, e: ClientError, rx: &mut mpsc::UnboundedReceiver<Chunk>) {
        self.id = None;
        self.flights.clear();
        while let Ok(chunk) = rx.try_recv() {
            self.push(chunk);
        }
        for chunk in self.queue.drain(..) {
            let _ = chunk.reply.send(Err(e.clone()));
        }
        self.untaken = 0;
    }
}

/// Answers the chunks at the front whose records are all acknowledged.
fn answer_done(queue: &mut VecDeque<Chunk>) {
    while queue.front().is_some_and(|c| c.acked == c.records.len()) {
        if let Some(chunk) = queue.pop_front() {
            let _ = chunk.reply.send(Ok(chunk.sent));
        }
    }
}

/// The next batch from the queue's records not yet in one (within the
/// limits; at least one record), and how many it took from which chunk (by
/// id).
fn take_batch(
    queue: &mut VecDeque<Chunk>,
    max_records: usize,
) -> (Vec<ProducerRecord>, Vec<(u64, usize)>) {
    let mut records = Vec::new();
    let mut parts = Vec::new();
    let mut bytes = 0;
    for chunk in queue.iter_mut().filter(|c| c.taken < c.records.len()) {
        let start = chunk.taken;
        while chunk.taken < chunk.records.len()
            && records.len() < max_records
            && (bytes < MAX_BATCH_BYTES || records.is_empty())
        {
            let r = &chunk.records[chunk.taken];
            bytes += record_bytes(r);
            records.push(r.clone());
            chunk.taken += 1;
        }
        if chunk.taken > start {
            parts.push((chunk.id, chunk.taken - start));
        }
        if chunk.taken < chunk.records.len() {
            break;
        }
    }
    (records, parts)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(
        id: u64,
        n: usize,
        size: usize,
    ) -> (Chunk, oneshot::Receiver<Result<Vec<Sent>, ClientError>>) {
        let (reply, answer) = oneshot::channel();
        let records = (0..n)
            .map(|_| ProducerRecord {
                key: None,
                value: Some(bytes::Bytes::from(vec![b'x'; size])),
                timestamp: 0,
            })
            .collect();
        let chunk = Chunk {
            id,
            records,
            taken: 0,
            acked: 0,
            sent: Vec::new(),
            reply,
        };
        (chunk, answer)
    }

    #[test]
    fn a_batch_spans_queued_sends_and_splits_one_at_the_record_limit() {
        let (a, _) = chunk(7, 3, 10);
        let (b, _) = chunk(8, 5, 10);
        let (c, _) = chunk(9, 1, 10);
        let mut queue = VecDeque::from([a, b, c]);
        let (records, parts) = take_batch(&mut queue, 6);
        assert_eq!(records.len(), 6);
        assert_eq!(parts, vec![(7, 3), (8, 3)]);
        let (records, parts) = take_batch(&mut queue, 6);
        assert_eq!(records.len(), 3);
        assert_eq!(parts, vec![(8, 2), (9, 1)]);
        assert!(
            queue.iter().all(|c| c.taken == c.records.len()),
            "all taken"
        );
    }

    #[test]
    fn a_batch_stops_near_the_byte_limit_but_an_oversized_record_goes_alone() {
        let (big, _) = chunk(0, 2, MAX_BATCH_BYTES + 1);
        let (small, _) = chunk(1, 300, 4096);
        let mut queue = VecDeque::from([big, small]);
        assert_eq!(take_batch(&mut queue, 2_000).1, vec![(0, 1)]);
        assert_eq!(take_batch(&mut queue, 2_000).1, vec![(0, 1)]);
        let (records, parts) = take_batch(&mut queue, 2_000);
        // 4 KiB records: the batch closes at the first past 512 KiB.
        assert_eq!(records.len(), MAX_BATCH_BYTES / (4096 + 16) + 1);
        assert_eq!(parts, vec![(1, records.len())]);
        // What is in a batch is not taken again.
        assert_eq!(take_batch(&mut queue, 2_000).1, vec![(1, records.len())]);
        assert_eq!(
            take_batch(&mut queue, 2_000).1,
            vec![(1, 300 - 2 * records.len())]
        );
    }

    #[test]
    fn acknowledged_sends_are_answered_in_order_with_their_runs() {
        let (mut a, mut a_answer) = chunk(0, 2, 1);
        let (mut b, mut b_answer) = chunk(1, 2, 1);
        a.taken = 2;
        a.acked = 2;
        b.taken = 2;
        a.sent.push(Sent {
            partition: 1,
            base_offset: Some(7),
            count: 2,
        });
        let mut queue = VecDeque::from([a, b]);
        answer_done(&mut queue);
        assert_eq!(queue.len(), 1, "b is in a batch not yet acknowledged");
        assert!(b_answer.try_recv().is_err());
        assert_eq!(
            a_answer.try_recv().ok(),
            Some(Ok(vec![Sent {
                partition: 1,
                base_offset: Some(7),
                count: 2
            }]))
        );
    }
}
