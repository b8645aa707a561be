//! [`Producer`]: records to partitions (murmur2 of the key, or round-robin
//! without one), batched per partition, partitions sent concurrently, each
//! partition's batches in order.

use super::{encode_batch, partition_for_key, Acks, Client, ClientError, ProducerRecord};
use futures_util::future::join_all;
use std::collections::BTreeMap;

/// Most records in one batch.
const MAX_BATCH_RECORDS: usize = 2_000;
/// About the most bytes in one batch (under the broker's 1 MiB limit).
const MAX_BATCH_BYTES: usize = 512 << 10;

/// What one partition took from a [`Producer::send`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sent {
    /// The partition.
    pub partition: u32,
    /// The offset of its first record (`None` with acks=0).
    pub base_offset: Option<u64>,
    /// Records appended.
    pub count: usize,
}

/// A producer for one topic.
pub struct Producer {
    client: Client,
    topic: String,
    acks: Acks,
    partitions: u32,
    next: u32,
}

impl Producer {
    /// A producer for `topic` (which must exist).
    pub async fn new(client: Client, topic: &str, acks: Acks) -> Result<Producer, ClientError> {
        let partitions = u32::try_from(client.partitions(topic).await?.len()).unwrap_or(u32::MAX);
        Ok(Producer {
            client,
            topic: topic.to_string(),
            acks,
            partitions: partitions.max(1),
            next: 0,
        })
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

    /// Sends `records`; returns once every batch is acknowledged (by `acks`),
    /// one entry per batch.
    pub async fn send(&mut self, records: Vec<ProducerRecord>) -> Result<Vec<Sent>, ClientError> {
        let mut by_partition: BTreeMap<u32, Vec<ProducerRecord>> = BTreeMap::new();
        for record in records {
            let p = self.partition_for(record.key.as_deref());
            by_partition.entry(p).or_default().push(record);
        }
        let sends = by_partition
            .into_iter()
            .map(|(p, records)| send_partition(&self.client, &self.topic, p, records, self.acks));
        let mut sent = Vec::new();
        for result in join_all(sends).await {
            sent.extend(result?);
        }
        Ok(sent)
    }
}

async fn send_partition(
    client: &Client,
    topic: &str,
    partition: u32,
    records: Vec<ProducerRecord>,
    acks: Acks,
) -> Result<Vec<Sent>, ClientError> {
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
        let batch = encode_batch(&records[start..end], None)?;
        let base_offset = client.produce(topic, partition, batch, acks).await?;
        sent.push(Sent {
            partition,
            base_offset,
            count: end - start,
        });
        start = end;
    }
    Ok(sent)
}
