//! Random appends, reads, truncations, flushes, reopens and power losses agree
//! with a model that is just a list of batches.

use crate::support::*;
use proptest::prelude::*;
use raftline_broker::log::Log;
use raftline_broker::{LeaderEpoch, Offset};

#[derive(Clone, Debug)]
enum Op {
    Append {
        count: usize,
        value_len: usize,
        bump_epoch: bool,
    },
    Read {
        from: u16,
        max_bytes: usize,
        upper: u16,
    },
    Truncate {
        to: u16,
    },
    Flush,
    Reopen,
    PowerLoss,
    /// A power loss during which part of the unsynced tail reached the disk.
    TornPowerLoss {
        seed: u64,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (1..6usize, 0..200usize, prop::bool::weighted(0.2))
            .prop_map(|(count, value_len, bump_epoch)| Op::Append { count, value_len, bump_epoch }),
        4 => (any::<u16>(), 1..3000usize, any::<u16>()).prop_map(|(from, max_bytes, upper)| Op::Read { from, max_bytes, upper }),
        1 => any::<u16>().prop_map(|to| Op::Truncate { to }),
        2 => Just(Op::Flush),
        1 => Just(Op::Reopen),
        1 => Just(Op::PowerLoss),
        1 => any::<u64>().prop_map(|seed| Op::TornPowerLoss { seed }),
    ]
}

struct Batch {
    base: u64,
    count: u64,
    epoch: u32,
    bytes: Vec<u8>,
}

impl Batch {
    fn next(&self) -> u64 {
        self.base + self.count
    }
}

#[derive(Default)]
struct Model {
    batches: Vec<Batch>,
    /// Batches known to be fsynced.
    durable: usize,
    epoch: u32,
}

impl Model {
    fn end(&self) -> u64 {
        self.batches.last().map_or(0, Batch::next)
    }

    fn epochs(&self) -> Vec<(LeaderEpoch, Offset)> {
        let mut out: Vec<(LeaderEpoch, Offset)> = Vec::new();
        for b in &self.batches {
            if out.last().is_none_or(|&(e, _)| LeaderEpoch(b.epoch) > e) {
                out.push((LeaderEpoch(b.epoch), Offset(b.base)));
            }
        }
        out
    }

    fn truncate_batches(&mut self, keep: usize) {
        self.batches.truncate(keep);
        self.durable = self.durable.min(keep);
    }
}

/// Picks a position in `[0, n]` from a random number.
fn pick(r: u16, n: u64) -> u64 {
    u64::from(r) % (n + 1)
}

fn check(log: &Log, model: &Model) -> Result<(), TestCaseError> {
    prop_assert_eq!(log.log_end(), Offset(model.end()));
    prop_assert_eq!(log.log_start(), Offset(0));
    prop_assert_eq!(
        log.epoch_cache().entries().collect::<Vec<_>>(),
        model.epochs()
    );
    Ok(())
}

fn run(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let (disk, mut log) = fresh(small_config());
    let mut model = Model::default();
    for (step, op) in ops.into_iter().enumerate() {
        match op {
            Op::Append {
                count,
                value_len,
                bump_epoch,
            } => {
                model.epoch += u32::from(bump_epoch);
                let mut bytes = batch(count, value_len, &format!("s{step}")).to_vec();
                let info = log
                    .append_as_leader(&bytes, LeaderEpoch(model.epoch))
                    .unwrap();
                prop_assert_eq!(info.first_offset, Offset(model.end()));
                bytes[0..8].copy_from_slice(&(model.end() as i64).to_be_bytes());
                bytes[12..16].copy_from_slice(&(model.epoch as i32).to_be_bytes());
                let base = model.end();
                model.batches.push(Batch {
                    base,
                    count: count as u64,
                    epoch: model.epoch,
                    bytes,
                });
            }
            Op::Read {
                from,
                max_bytes,
                upper,
            } => {
                let from = pick(from, model.end());
                let upper = from + pick(upper, model.end() - from);
                let read = log.read(Offset(from), max_bytes, Offset(upper)).unwrap();
                let expected: Vec<&Batch> = model
                    .batches
                    .iter()
                    .skip_while(|b| b.next() <= from)
                    .take_while(|b| b.next() <= upper)
                    .collect();
                // One segment's worth at most: a prefix of the expected batches,
                // never empty when something is readable, within max_bytes.
                let mut got = &read.records[..];
                let mut taken = 0;
                while !got.is_empty() {
                    let b = expected
                        .get(taken)
                        .ok_or_else(|| TestCaseError::fail("read past the expected batches"))?;
                    prop_assert!(
                        got.starts_with(&b.bytes),
                        "step {}: batch {} differs",
                        step,
                        taken
                    );
                    got = &got[b.bytes.len()..];
                    taken += 1;
                }
                prop_assert_eq!(
                    taken == 0,
                    expected.is_empty(),
                    "step {}: from {} upper {}",
                    step,
                    from,
                    upper
                );
                if taken > 1 {
                    prop_assert!(read.records.len() <= max_bytes);
                }
                let next = if taken == 0 {
                    from
                } else {
                    expected[taken - 1].next()
                };
                prop_assert_eq!(read.next_offset, Offset(next));
            }
            Op::Truncate { to } => {
                let to = pick(to, model.end());
                let end = log.truncate_to(Offset(to)).unwrap();
                let keep = model.batches.iter().take_while(|b| b.next() <= to).count();
                model.truncate_batches(keep);
                prop_assert_eq!(end, Offset(model.end()));
            }
            Op::Flush => {
                log.flush(0).unwrap();
                model.durable = model.batches.len();
            }
            Op::Reopen => {
                drop(log);
                log = open(&disk, small_config());
            }
            Op::PowerLoss | Op::TornPowerLoss { .. } => {
                drop(log);
                match op {
                    Op::TornPowerLoss { seed } => disk.crash_torn(seed),
                    _ => disk.crash(),
                }
                log = open(&disk, small_config());
                // At least what was flushed survives (more may: rolls sync too),
                // and what survives is exactly a prefix of what was appended.
                let survived = model
                    .batches
                    .iter()
                    .take_while(|b| b.next() <= log.log_end().0)
                    .count();
                prop_assert!(
                    survived >= model.durable,
                    "step {}: lost flushed data",
                    step
                );
                model.truncate_batches(survived);
                model.durable = survived;
                let all: Vec<u8> = model
                    .batches
                    .iter()
                    .flat_map(|b| b.bytes.iter().copied())
                    .collect();
                let mut read_back = Vec::new();
                let mut from = 0;
                while from < model.end() {
                    let read = log
                        .read(Offset(from), 1 << 20, Offset(model.end()))
                        .unwrap();
                    read_back.extend_from_slice(&read.records);
                    from = read.next_offset.0;
                }
                prop_assert!(read_back == all, "step {}: recovered bytes differ", step);
            }
        }
        check(&log, &model)?;
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn log_agrees_with_a_list_of_batches(ops in prop::collection::vec(op(), 1..60)) {
        run(ops)?;
    }
}
