//! The history checker: the anomalies of Jepsen's Kafka checker, on a
//! history where offsets give the order (so every check is linear).
//!
//! A send's outcome is ok (acknowledged at an offset), fail (the server said
//! it did not append) or info (unknown: it may be in the log or not; never
//! assumed absent). Reads are consumers' polls and, after the heal, one
//! whole read of every partition.

use crate::history::{Event, Op, Tp};
use std::collections::{BTreeMap, BTreeSet};

/// The anomalies found, by name; empty when the history is valid.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Report {
    /// Anomaly name -> examples (at most a few each).
    pub anomalies: BTreeMap<&'static str, Vec<String>>,
    /// Sends acknowledged.
    pub ok: usize,
    /// Sends with an unknown outcome.
    pub info: usize,
    /// Sends that definitely failed.
    pub fail: usize,
    /// Records read (polls and final reads).
    pub reads: usize,
}

impl Report {
    /// Whether nothing was found.
    pub fn valid(&self) -> bool {
        self.anomalies.is_empty()
    }

    fn add(&mut self, name: &'static str, example: String) {
        let list = self.anomalies.entry(name).or_default();
        if list.len() < 5 {
            list.push(example);
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Outcome {
    Ok(u32, u64),
    Info,
    Fail,
}

/// Checks `events`.
pub fn check(events: &[Event]) -> Report {
    let mut report = Report::default();
    // value -> (topic, outcome)
    let mut sends: BTreeMap<&str, (&str, Outcome)> = BTreeMap::new();
    let mut invoked: BTreeSet<&str> = BTreeSet::new();
    // (tp, offset) -> values read or acknowledged there
    let mut at: BTreeMap<(Tp, u64), BTreeSet<&str>> = BTreeMap::new();
    // value -> where it was read
    let mut read_at: BTreeMap<&str, BTreeSet<(Tp, u64)>> = BTreeMap::new();
    // tp -> the final read, offset -> value
    let mut finals: BTreeMap<Tp, BTreeMap<u64, &str>> = BTreeMap::new();
    // (producer, tp) -> last acknowledged offset
    let mut last_sent: BTreeMap<(&str, Tp), u64> = BTreeMap::new();
    // (consumer, tp) -> (next offset expected, last high watermark)
    let mut polls: BTreeMap<(&str, Tp), (u64, u64)> = BTreeMap::new();

    for e in events {
        match &e.op {
            Op::SendInvoke { value, .. } => {
                invoked.insert(value);
            }
            Op::SendOk {
                topic,
                partition,
                offset,
                value,
            } => {
                report.ok += 1;
                sends.insert(value, (topic, Outcome::Ok(*partition, *offset)));
                let tp = (topic.clone(), *partition);
                at.entry((tp.clone(), *offset)).or_default().insert(value);
                if let Some(last) = last_sent.insert((&e.process, tp), *offset) {
                    if *offset <= last {
                        report.add(
                            "nonmonotonic-send",
                            format!(
                                "{} got {topic}/{partition}@{offset} after @{last}",
                                e.process
                            ),
                        );
                    }
                }
            }
            Op::SendInfo { topic, value, .. } => {
                report.info += 1;
                sends.insert(value, (topic, Outcome::Info));
            }
            Op::SendFail { topic, value, .. } => {
                report.fail += 1;
                sends.insert(value, (topic, Outcome::Fail));
            }
            Op::Poll {
                topic,
                partition,
                from,
                records,
                high_watermark,
            } => {
                let tp = (topic.clone(), *partition);
                let (next, hw) = polls.entry((&e.process, tp.clone())).or_insert((*from, 0));
                if *high_watermark < *hw {
                    report.add(
                        "nonmonotonic-high-watermark",
                        format!(
                            "{} saw {topic}/{partition}'s high watermark {high_watermark} after {hw}",
                            e.process
                        ),
                    );
                }
                *hw = (*hw).max(*high_watermark);
                if *from != *next {
                    report.add(
                        "nonmonotonic-poll",
                        format!(
                            "{} fetched {topic}/{partition} from {from}, expected {next}",
                            e.process
                        ),
                    );
                }
                let mut expect = *from;
                for (offset, value) in records {
                    if *offset < expect {
                        report.add(
                            "nonmonotonic-poll",
                            format!(
                                "{} read {topic}/{partition}@{offset} after @{expect}",
                                e.process
                            ),
                        );
                    } else if *offset > expect {
                        report.add(
                            "poll-skip",
                            format!(
                                "{} skipped {topic}/{partition} offsets {expect}..{offset}",
                                e.process
                            ),
                        );
                    }
                    if *offset >= *high_watermark {
                        report.add(
                            "read-above-high-watermark",
                            format!(
                                "{} read {topic}/{partition}@{offset} with the high watermark at {high_watermark}",
                                e.process
                            ),
                        );
                    }
                    expect = offset + 1;
                    report.reads += 1;
                    at.entry((tp.clone(), *offset)).or_default().insert(value);
                    read_at
                        .entry(value)
                        .or_default()
                        .insert((tp.clone(), *offset));
                }
                *next = expect;
            }
            Op::FinalRead {
                topic,
                partition,
                records,
            } => {
                let tp = (topic.clone(), *partition);
                let mut expect = records.first().map_or(0, |r| r.0);
                let all = finals.entry(tp.clone()).or_default();
                for (offset, value) in records {
                    if *offset != expect {
                        report.add(
                            "poll-skip",
                            format!(
                                "the final read of {topic}/{partition} skipped {expect}..{offset}"
                            ),
                        );
                    }
                    expect = offset + 1;
                    report.reads += 1;
                    all.insert(*offset, value);
                    at.entry((tp.clone(), *offset)).or_default().insert(value);
                    read_at
                        .entry(value)
                        .or_default()
                        .insert((tp.clone(), *offset));
                }
            }
            Op::Admin { .. } | Op::Live { .. } | Op::Fault(_) | Op::Healed => {}
        }
    }

    for ((tp, offset), values) in &at {
        if values.len() > 1 {
            report.add(
                "inconsistent-offsets",
                format!("{}/{}@{offset} holds {values:?}", tp.0, tp.1),
            );
        }
    }
    for (value, places) in &read_at {
        if places.len() > 1 {
            report.add("duplicate", format!("{value} read at {places:?}"));
        }
        if !invoked.contains(value) {
            report.add(
                "unexpected",
                format!("{value} read at {places:?}, never sent"),
            );
        }
        if let Some((_, Outcome::Fail)) = sends.get(value) {
            report.add(
                "aborted-read",
                format!("{value} read at {places:?}, but its send definitely failed"),
            );
        }
    }
    for (value, (topic, outcome)) in &sends {
        let Outcome::Ok(partition, offset) = outcome else {
            continue;
        };
        let tp = (topic.to_string(), *partition);
        let Some(all) = finals.get(&tp) else {
            report.add(
                "lost",
                format!("{value} acknowledged at {topic}/{partition}@{offset}; the partition was never read whole"),
            );
            continue;
        };
        match all.get(offset) {
            Some(v) if v == value => {}
            Some(v) => report.add(
                "lost",
                format!("{value} acknowledged at {topic}/{partition}@{offset}, which holds {v}"),
            ),
            None => report.add(
                "lost",
                format!("{value} acknowledged at {topic}/{partition}@{offset}, which the final read lacks"),
            ),
        }
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(at_ms: u64, process: &str, op: Op) -> Event {
        Event {
            at_ms,
            process: process.into(),
            op,
        }
    }

    fn invoke(value: &str) -> Op {
        Op::SendInvoke {
            topic: "t".into(),
            value: value.into(),
        }
    }

    fn ok(value: &str, offset: u64) -> Op {
        Op::SendOk {
            topic: "t".into(),
            partition: 0,
            offset,
            value: value.into(),
        }
    }

    fn poll(from: u64, records: &[(u64, &str)], high_watermark: u64) -> Op {
        Op::Poll {
            topic: "t".into(),
            partition: 0,
            from,
            records: records.iter().map(|(o, v)| (*o, v.to_string())).collect(),
            high_watermark,
        }
    }

    fn final_read(records: &[(u64, &str)]) -> Op {
        Op::FinalRead {
            topic: "t".into(),
            partition: 0,
            records: records.iter().map(|(o, v)| (*o, v.to_string())).collect(),
        }
    }

    /// Two acknowledged sends, a consumer, and the final read: valid.
    fn valid() -> Vec<Event> {
        vec![
            ev(1, "p", invoke("a")),
            ev(2, "p", ok("a", 0)),
            ev(3, "p", invoke("b")),
            ev(4, "p", ok("b", 1)),
            ev(5, "c", poll(0, &[(0, "a")], 1)),
            ev(6, "c", poll(1, &[(1, "b")], 2)),
            ev(9, "final", final_read(&[(0, "a"), (1, "b")])),
        ]
    }

    fn anomalies(events: &[Event]) -> Vec<&'static str> {
        check(events).anomalies.keys().copied().collect()
    }

    #[test]
    fn a_valid_history_has_no_anomaly() {
        let report = check(&valid());
        assert!(report.valid(), "{report:?}");
        assert_eq!((report.ok, report.reads), (2, 4));
    }

    #[test]
    fn an_acknowledged_record_missing_from_the_final_read_is_lost() {
        let mut events = valid();
        events[6] = ev(9, "final", final_read(&[(0, "a")]));
        assert_eq!(anomalies(&events), vec!["lost"]);
    }

    #[test]
    fn two_values_at_one_offset_are_inconsistent_and_unknown_values_unexpected() {
        let mut events = valid();
        events[6] = ev(9, "final", final_read(&[(0, "a"), (1, "x")]));
        assert_eq!(
            anomalies(&events),
            vec!["inconsistent-offsets", "lost", "unexpected"]
        );
    }

    #[test]
    fn a_value_at_two_offsets_is_a_duplicate() {
        let mut events = valid();
        events[6] = ev(9, "final", final_read(&[(0, "a"), (1, "b"), (2, "a")]));
        assert_eq!(anomalies(&events), vec!["duplicate"]);
    }

    #[test]
    fn reading_a_definitely_failed_send_is_an_aborted_read() {
        let mut events = valid();
        events.insert(
            0,
            ev(
                0,
                "p",
                Op::SendFail {
                    topic: "t".into(),
                    value: "z".into(),
                    error: "RECORD_TOO_LARGE".into(),
                },
            ),
        );
        events.insert(0, ev(0, "p", invoke("z")));
        let last = events.len() - 1;
        events[last] = ev(9, "final", final_read(&[(0, "a"), (1, "b"), (2, "z")]));
        assert_eq!(anomalies(&events), vec!["aborted-read"]);
    }

    #[test]
    fn an_unknown_outcome_may_be_present_or_absent() {
        let mut events = valid();
        events.insert(0, ev(0, "p", invoke("u")));
        events.insert(
            1,
            ev(
                0,
                "p",
                Op::SendInfo {
                    topic: "t".into(),
                    value: "u".into(),
                    error: "timeout".into(),
                },
            ),
        );
        assert!(check(&events).valid());
        let last = events.len() - 1;
        events[last] = ev(9, "final", final_read(&[(0, "a"), (1, "b"), (2, "u")]));
        let report = check(&events);
        assert!(report.valid(), "{report:?}");
        assert_eq!(report.info, 1);
    }

    #[test]
    fn consumer_anomalies_skips_regressions_and_reads_above_the_high_watermark() {
        let mut events = valid();
        // Skips offset 1 within a poll.
        events[5] = ev(6, "c", poll(1, &[(2, "b")], 3));
        assert!(anomalies(&events).contains(&"poll-skip"));

        let mut events = valid();
        // Fetches from 0 again without a seek.
        events[5] = ev(6, "c", poll(0, &[(0, "a")], 1));
        assert!(anomalies(&events).contains(&"nonmonotonic-poll"));

        let mut events = valid();
        events[5] = ev(6, "c", poll(1, &[], 0));
        assert_eq!(anomalies(&events), vec!["nonmonotonic-high-watermark"]);

        let mut events = valid();
        events[5] = ev(6, "c", poll(1, &[(1, "b")], 1));
        assert_eq!(anomalies(&events), vec!["read-above-high-watermark"]);
    }

    #[test]
    fn a_producer_s_offsets_going_back_is_a_nonmonotonic_send() {
        let mut events = valid();
        events[3] = ev(4, "p", ok("b", 0));
        let found = anomalies(&events);
        assert!(found.contains(&"nonmonotonic-send"), "{found:?}");
    }
}
