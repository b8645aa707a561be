//! [`Producer`]: records to partitions (murmur2 of the key, or round-robin
//! without one), batched per partition, partitions sent concurrently, each
//! partition's batches in order. Idempotent by default, as Kafka's producer
//! is: a producer id from the cluster and a sequence number per partition
//! make a retried batch land once.

use super::{
    encode_batch, partition_for_key, Acks, Client, ClientError, ProducerRecord, ProducerStamp,
};
use futures_util::future::join_all;
use std::collections::BTreeMap;

/// Most records in one batch.
const MAX_BATCH_RECORDS: usize = 2_000;
/// About the most bytes in one batch (under the broker's 1 MiB limit).
const MAX_BATCH_BYTES: usize = 512 << 10;

/// What one batch of a [`Producer::send`] got.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sent {
    /// The partition.
    pub partition: u32,
    /// The offset of its first record (`None` with acks=0).
    pub base_offset: Option<u64>,
    /// Records in the batch.
    pub count: usize,
}

/// A producer for one topic.
pub struct Producer {
    client: Client,
    topic: String,
    acks: Acks,
    partitions: u32,
    next: u32,
    idempotent: bool,
    /// Producer id and epoch, once obtained.
    id: Option<(i64, i16)>,
    /// The next sequence number per partition.
    sequences: BTreeMap<u32, i32>,
}

impl Producer {
    /// An idempotent producer for `topic` (which must exist).
    pub async fn new(client: Client, topic: &str, acks: Acks) -> Result<Producer, ClientError> {
        let partitions = u32::try_from(client.partitions(topic).await?.len()).unwrap_or(u32::MAX);
        Ok(Producer {
            client,
            topic: topic.to_string(),
            acks,
            partitions: partitions.max(1),
            next: 0,
            idempotent: true,
            id: None,
            sequences: BTreeMap::new(),
        })
    }

    /// Turns idempotence off (`enable.idempotence=false`): retries may then
    /// store a batch twice.
    pub fn without_idempotence(mut self) -> Self {
        self.idempotent = false;
        self
    }

    /// The topic's partition count.
    pub fn partitions(&self) -> u32 {
        self.partitions
    }

    /// The producer id and epoch in use, if any yet.
    pub fn producer_id(&self) -> Option<(i64, i16)> {
        self.id
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

    /// Sends `records`; returns once every batch is acknowledged (by `acks`),
    /// one entry per batch. After a failure the producer starts over with a
    /// new producer id, since how much of the failed send landed is unknown.
    pub async fn send(&mut self, records: Vec<ProducerRecord>) -> Result<Vec<Sent>, ClientError> {
        if self.idempotent && self.id.is_none() {
            self.id = Some(self.client.init_producer_id().await?);
            self.sequences.clear();
        }
        let mut by_partition: BTreeMap<u32, Vec<ProducerRecord>> = BTreeMap::new();
        for record in records {
            let p = self.partition_for(record.key.as_deref());
            by_partition.entry(p).or_default().push(record);
        }
        let id = self.id;
        let sends = by_partition.into_iter().map(|(p, records)| {
            let sequence = self.sequences.get(&p).copied().unwrap_or(0);
            send_partition(
                &self.client,
                &self.topic,
                p,
                records,
                self.acks,
                id,
                sequence,
            )
        });
        let mut sent = Vec::new();
        let mut failure = None;
        for (p, result) in join_all(sends).await {
            match result {
                Ok((batches, next_sequence)) => {
                    self.sequences.insert(p, next_sequence);
                    sent.extend(batches);
                }
                Err(e) => failure = Some(e),
            }
        }
        match failure {
            Some(e) => {
                self.id = None;
                Err(e)
            }
            None => Ok(sent),
        }
    }
}

/// Sends one partition's records in order; the batches and the next sequence.
async fn send_partition(
    client: &Client,
    topic: &str,
    partition: u32,
    records: Vec<ProducerRecord>,
    acks: Acks,
    id: Option<(i64, i16)>,
    mut sequence: i32,
) -> (u32, Result<(Vec<Sent>, i32), ClientError>) {
    let mut sent = Vec::new();
    let mut start = 0;
    while start < records.len() {
        let mut end = start;
        let mut bytes = 0;
        while end < records.len()
            && end - start < MAX_BATCH_RECORDS
            && (bytes < MAX_BATCH_BYTES || end == start)
        {
            let r = &records[end];
            bytes += r.key.as_ref().map_or(0, |k| k.len())
                + r.value.as_ref().map_or(0, |v| v.len())
                + 16;
            end += 1;
        }
        let count = end - start;
        let stamp = id.map(|(producer_id, producer_epoch)| ProducerStamp {
            producer_id,
            producer_epoch,
            base_sequence: sequence,
        });
        let batch = match encode_batch(&records[start..end], stamp) {
            Ok(b) => b,
            Err(e) => return (partition, Err(e)),
        };
        let base_offset = match client.produce(topic, partition, batch, acks).await {
            Ok(o) => o,
            Err(e) => return (partition, Err(e)),
        };
        // Sequences wrap to 0 after i32::MAX, as Kafka's do.
        let next = i64::from(sequence) + count as i64;
        sequence = if next > i64::from(i32::MAX) {
            (next - i64::from(i32::MAX) - 1) as i32
        } else {
            next as i32
        };
        sent.push(Sent {
            partition,
            base_offset,
            count,
        });
        start = end;
    }
    (partition, Ok((sent, sequence)))
}
