//! Replica placement for new topics and partitions: Kafka's round robin, rack
//! aware when every live broker has a rack.

use crate::error::MetadataError;
use crate::ids::BrokerId;
use crate::model::Broker;
use std::collections::{BTreeMap, BTreeSet};

/// One replica list per partition (preferred leader first) over the unfenced
/// brokers, as Kafka's `AdminUtils` places them: partition `p` is led by broker
/// `(start + p) % n` of the broker list, and its followers follow it at a shift
/// that grows every `n` partitions, so both leaders and followers spread evenly.
/// When every unfenced broker has a rack, the list alternates racks and the
/// followers skip racks already holding a replica of the partition while some
/// rack holds none.
///
/// `start` is the caller's seed (e.g. the topic id), so topics do not all start on
/// the same broker; the result is a pure function of the arguments. For new
/// partitions of an existing topic, pass a `start` moved on by the existing count.
pub fn place_replicas(
    brokers: &BTreeMap<BrokerId, Broker>,
    partitions: u32,
    replication_factor: u32,
    start: u32,
) -> Result<Vec<Vec<BrokerId>>, MetadataError> {
    if partitions == 0 {
        return Err(MetadataError::InvalidPartitions {
            reason: "at least one partition is required".into(),
        });
    }
    let live: Vec<&Broker> = brokers.values().filter(|b| !b.fenced).collect();
    let rf = replication_factor as usize;
    if rf == 0 || rf > live.len() {
        return Err(MetadataError::InvalidReplicationFactor {
            reason: format!(
                "replication factor {replication_factor} must be between 1 and the {} unfenced brokers",
                live.len()
            ),
        });
    }
    let racks: Option<Vec<&str>> = live.iter().map(|b| b.rack.as_deref()).collect();
    Ok(match racks {
        Some(_) => rack_aware(&live, partitions, rf, start),
        None => {
            let ids: Vec<BrokerId> = live.iter().map(|b| b.id).collect();
            rack_unaware(&ids, partitions, rf, start)
        }
    })
}

/// Kafka's `replicaIndex`: the follower `j` of a partition led by `first`.
/// Never `first` itself (the shift is 1..n-1). Needs `n >= 2`.
fn follower_index(first: usize, shift: usize, j: usize, n: usize) -> usize {
    (first + 1 + (shift + j) % (n - 1)) % n
}

fn rack_unaware(ids: &[BrokerId], partitions: u32, rf: usize, start: u32) -> Vec<Vec<BrokerId>> {
    let n = ids.len();
    let start = start as usize % n;
    let mut shift = start;
    let mut out = Vec::with_capacity(partitions as usize);
    for p in 0..partitions as usize {
        if p > 0 && p % n == 0 {
            shift += 1;
        }
        let first = (start + p) % n;
        let mut replicas = vec![ids[first]];
        replicas.extend((0..rf - 1).map(|j| ids[follower_index(first, shift, j, n)]));
        out.push(replicas);
    }
    out
}

fn rack_aware(live: &[&Broker], partitions: u32, rf: usize, start: u32) -> Vec<Vec<BrokerId>> {
    let arranged = rack_alternated(live);
    let n = arranged.len();
    let num_racks = arranged
        .iter()
        .map(|(_, rack)| *rack)
        .collect::<BTreeSet<_>>()
        .len();
    let start = start as usize % n;
    let mut shift = start;
    let mut out = Vec::with_capacity(partitions as usize);
    for p in 0..partitions as usize {
        if p > 0 && p % n == 0 {
            shift += 1;
        }
        let first = (start + p) % n;
        let (leader, leader_rack) = arranged[first];
        let mut replicas = vec![leader];
        let mut racks_used = BTreeSet::from([leader_rack]);
        let mut k = 0;
        for _ in 1..rf {
            // Take the next broker in shifted order that is new to this partition
            // and, while some rack holds no replica, in a new rack. Within n tries
            // one always qualifies; the fallback only keeps the loop bounded.
            let mut chosen = None;
            for _ in 0..n {
                let (b, rack) = arranged[follower_index(first, shift * num_racks, k, n)];
                k += 1;
                let rack_ok = !racks_used.contains(rack) || racks_used.len() == num_racks;
                if rack_ok && !replicas.contains(&b) {
                    chosen = Some((b, rack));
                    break;
                }
            }
            let (b, rack) = chosen
                .or_else(|| {
                    arranged
                        .iter()
                        .copied()
                        .find(|(b, _)| !replicas.contains(b))
                })
                .unwrap_or((leader, leader_rack));
            replicas.push(b);
            racks_used.insert(rack);
        }
        out.push(replicas);
    }
    out
}

/// Brokers ordered to alternate racks: the first of each rack (racks in name
/// order, brokers in id order), then the second of each, and so on.
fn rack_alternated<'a>(live: &[&'a Broker]) -> Vec<(BrokerId, &'a str)> {
    let mut by_rack: BTreeMap<&str, Vec<BrokerId>> = BTreeMap::new();
    for &b in live {
        if let Some(rack) = b.rack.as_deref() {
            by_rack.entry(rack).or_default().push(b.id);
        }
    }
    let deepest = by_rack.values().map(Vec::len).max().unwrap_or(0);
    let mut out = Vec::with_capacity(live.len());
    for i in 0..deepest {
        for (rack, ids) in &by_rack {
            if let Some(&id) = ids.get(i) {
                out.push((id, *rack));
            }
        }
    }
    out
}
