//! `raftline group ...` and `raftline consume --group`: consumer groups from
//! the command line, as kafka-consumer-groups.sh and the console consumer
//! offer them.

use crate::data::{print_records, ConsumeOptions};
use crate::table::print_rows;
use crate::Output;
use anyhow::{bail, Context, Result};
use raftline::client::{
    is_non_empty_group, Client, GroupConfig, GroupConsumer, StartAt, TopicPartition,
};
use serde_json::json;
use std::collections::BTreeMap;

/// `consume TOPIC --group G`: a member of `group` printing what it is given;
/// it commits on an interval and, when it stops, commits and leaves.
pub async fn consume(
    client: Client,
    topic: &str,
    group: &str,
    o: ConsumeOptions,
    output: Output,
) -> Result<()> {
    let mut config = GroupConfig::new(group, &[topic]);
    config.reset = if o.from_beginning {
        StartAt::Earliest
    } else {
        StartAt::Latest
    };
    let mut consumer = GroupConsumer::join(client, config).await?;
    let seen = print_records(&mut consumer, &o, output).await;
    // Commit what was printed and leave, whatever ended the run.
    consumer.close().await?;
    eprintln!("Processed a total of {} messages", seen?);
    Ok(())
}

/// `group list`.
pub async fn list(client: &Client, output: Output) -> Result<()> {
    let groups = client.list_groups().await?;
    match output {
        Output::Json => println!(
            "{}",
            json!(groups
                .iter()
                .map(|g| json!({"group": g.group, "state": g.state, "members": g.members}))
                .collect::<Vec<_>>())
        ),
        Output::Table => {
            let rows: Vec<[String; 3]> = groups
                .iter()
                .map(|g| [g.group.clone(), g.state.clone(), g.members.to_string()])
                .collect();
            print_rows(["GROUP", "STATE", "MEMBERS"], &rows);
        }
    }
    Ok(())
}

/// The end offset of every partition of the topics named in `partitions`.
async fn end_offsets(
    client: &Client,
    partitions: impl Iterator<Item = &TopicPartition>,
) -> BTreeMap<TopicPartition, Option<u64>> {
    let mut out = BTreeMap::new();
    for tp in partitions {
        let end = client
            .list_offset(&tp.topic, tp.partition, -1)
            .await
            .ok()
            .flatten();
        out.insert(tp.clone(), end);
    }
    out
}

/// `group describe G`: state and members, then per partition the committed
/// offset, the log end and the lag, with its owner.
pub async fn describe(client: &Client, group: &str, output: Output) -> Result<()> {
    let d = client.describe_group(group).await?;
    let mut owner: BTreeMap<TopicPartition, String> = BTreeMap::new();
    for m in &d.members {
        for t in &m.assignment {
            for &partition in &t.partitions {
                let tp = TopicPartition {
                    topic: t.topic.clone(),
                    partition,
                };
                owner.insert(tp, m.member_id.clone());
            }
        }
    }
    let committed: BTreeMap<TopicPartition, u64> = d
        .offsets
        .iter()
        .map(|o| {
            let tp = TopicPartition {
                topic: o.topic.clone(),
                partition: o.partition,
            };
            (tp, o.offset)
        })
        .collect();
    // Every partition of every topic the group reads or has offsets in.
    let mut topics: Vec<String> = d.members.iter().flat_map(|m| m.topics.clone()).collect();
    topics.extend(committed.keys().map(|tp| tp.topic.clone()));
    topics.sort();
    topics.dedup();
    let mut partitions = Vec::new();
    for topic in &topics {
        if let Ok(list) = client.partitions(topic).await {
            partitions.extend(list.iter().map(|p| TopicPartition {
                topic: topic.clone(),
                partition: p.index,
            }));
        }
    }
    let ends = end_offsets(client, partitions.iter()).await;
    let lag = |tp: &TopicPartition| match (committed.get(tp), ends.get(tp).copied().flatten()) {
        (Some(&c), Some(e)) => Some(e.saturating_sub(c)),
        (None, Some(e)) => Some(e),
        _ => None,
    };
    let cell = |v: Option<u64>| v.map_or("-".to_string(), |v| v.to_string());
    match output {
        Output::Json => println!(
            "{}",
            json!({
                "group": group,
                "state": d.state,
                "group_epoch": d.group_epoch,
                "assignor": d.assignor,
                "members": d.members.iter().map(|m| json!({
                    "member_id": m.member_id,
                    "instance_id": m.instance_id,
                    "member_epoch": m.member_epoch,
                    "topics": m.topics,
                    "assignment": m.assignment.iter().map(|t| json!({"topic": t.topic, "partitions": t.partitions})).collect::<Vec<_>>(),
                })).collect::<Vec<_>>(),
                "partitions": partitions.iter().map(|tp| json!({
                    "topic": tp.topic,
                    "partition": tp.partition,
                    "committed_offset": committed.get(tp),
                    "log_end_offset": ends.get(tp).copied().flatten(),
                    "lag": lag(tp),
                    "member": owner.get(tp),
                })).collect::<Vec<_>>(),
            })
        ),
        Output::Table => {
            println!(
                "Group: {group}  State: {}  Epoch: {}  Assignor: {}  Members: {}",
                d.state,
                d.group_epoch,
                d.assignor,
                d.members.len()
            );
            let rows: Vec<[String; 6]> = partitions
                .iter()
                .map(|tp| {
                    [
                        tp.topic.clone(),
                        tp.partition.to_string(),
                        cell(committed.get(tp).copied()),
                        cell(ends.get(tp).copied().flatten()),
                        cell(lag(tp)),
                        owner.get(tp).cloned().unwrap_or_else(|| "-".into()),
                    ]
                })
                .collect();
            print_rows(
                [
                    "TOPIC",
                    "PARTITION",
                    "CURRENT-OFFSET",
                    "LOG-END-OFFSET",
                    "LAG",
                    "MEMBER",
                ],
                &rows,
            );
        }
    }
    Ok(())
}

/// `group delete G`.
pub async fn delete(client: &Client, group: &str, output: Output) -> Result<()> {
    match client.delete_group(group).await {
        Ok(()) => {}
        Err(e) if is_non_empty_group(&e) => bail!("{e}"),
        Err(e) => return Err(e.into()),
    }
    match output {
        Output::Json => println!("{}", json!({"deleted": group})),
        Output::Table => println!("Deleted group {group}"),
    }
    Ok(())
}

/// Where `group reset-offsets` moves each partition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ResetTo {
    /// The log start.
    Earliest,
    /// The log end.
    Latest,
    /// An offset (kept within the log).
    Offset(u64),
    /// The first offset at or after a time, ms since the epoch.
    Timestamp(i64),
    /// The committed offset moved by this much (kept within the log).
    Shift(i64),
}

/// `YYYY-MM-DDTHH:MM:SS[.mmm]` (UTC, as kafka-consumer-groups.sh takes it),
/// or ms since the epoch, as ms since the epoch.
pub fn parse_datetime(s: &str) -> Result<i64, String> {
    if let Ok(ms) = s.parse::<i64>() {
        return Ok(ms);
    }
    let bad = || format!("{s:?} is not YYYY-MM-DDTHH:MM:SS[.mmm] (UTC) or ms since the epoch");
    let s = s.strip_suffix('Z').unwrap_or(s);
    let (date, time) = s.split_once('T').ok_or_else(bad)?;
    let num = |v: &str| v.parse::<i64>().map_err(|_| bad());
    let d: Vec<&str> = date.split('-').collect();
    let (secs, millis) = time.split_once('.').unwrap_or((time, "0"));
    let t: Vec<&str> = secs.split(':').collect();
    let ([y, m, day], [hh, mm, ss]) = (d.as_slice(), t.as_slice()) else {
        return Err(bad());
    };
    let (y, m, day, hh, mm, ss) = (num(y)?, num(m)?, num(day)?, num(hh)?, num(mm)?, num(ss)?);
    if !(1..=12).contains(&m) || !(1..=31).contains(&day) || hh > 23 || mm > 59 || ss > 60 {
        return Err(bad());
    }
    let millis = num(&format!("{millis:0<3}")[..3])?;
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Ok(((days * 24 + hh) * 60 + mm) * 60_000 + ss * 1000 + millis)
}

/// `group reset-offsets G --topic T --to-...`: prints the plan; with
/// `execute`, sets it (the group must have no members).
pub async fn reset_offsets(
    client: &Client,
    group: &str,
    topic: &str,
    to: ResetTo,
    execute: bool,
    output: Output,
) -> Result<()> {
    let partitions = client.partitions(topic).await?;
    let committed = client.committed_offsets(group).await?;
    let mut plan: BTreeMap<TopicPartition, (Option<u64>, u64)> = BTreeMap::new();
    for p in &partitions {
        let tp = TopicPartition {
            topic: topic.to_string(),
            partition: p.index,
        };
        let start = client.list_offset(topic, p.index, -2).await?.unwrap_or(0);
        let end = client
            .list_offset(topic, p.index, -1)
            .await?
            .unwrap_or(start);
        let current = committed.get(&tp).copied();
        let clamp =
            |o: i128| u64::try_from(o.clamp(i128::from(start), i128::from(end))).unwrap_or(start);
        let target = match &to {
            ResetTo::Earliest => start,
            ResetTo::Latest => end,
            ResetTo::Offset(o) => clamp(i128::from(*o)),
            ResetTo::Timestamp(ms) => client
                .list_offset(topic, p.index, *ms)
                .await?
                .unwrap_or(end),
            ResetTo::Shift(by) => clamp(i128::from(current.unwrap_or(start)) + i128::from(*by)),
        };
        plan.insert(tp, (current, target));
    }
    if execute {
        let offsets = plan
            .iter()
            .map(|(tp, (_, target))| (tp.clone(), *target))
            .collect();
        client
            .reset_offsets(group, &offsets)
            .await
            .with_context(|| format!("group {group:?} was not changed"))?;
    }
    match output {
        Output::Json => println!(
            "{}",
            json!({
                "group": group,
                "executed": execute,
                "partitions": plan.iter().map(|(tp, (current, target))| json!({
                    "topic": tp.topic, "partition": tp.partition,
                    "current_offset": current, "new_offset": target,
                })).collect::<Vec<_>>(),
            })
        ),
        Output::Table => {
            let rows: Vec<[String; 4]> = plan
                .iter()
                .map(|(tp, (current, target))| {
                    [
                        tp.topic.clone(),
                        tp.partition.to_string(),
                        current.map_or("-".into(), |c| c.to_string()),
                        target.to_string(),
                    ]
                })
                .collect();
            print_rows(
                ["TOPIC", "PARTITION", "CURRENT-OFFSET", "NEW-OFFSET"],
                &rows,
            );
            if !execute {
                eprintln!("Dry run: nothing changed. Add --execute to set these offsets (the group must have no active members).");
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::parse_datetime;

    #[test]
    fn datetimes_are_utc_ms() {
        assert_eq!(parse_datetime("1970-01-01T00:00:00"), Ok(0));
        assert_eq!(
            parse_datetime("2026-11-22T12:30:05.250"),
            Ok(1_795_350_605_250)
        );
        assert_eq!(parse_datetime("2000-02-29T23:59:59Z"), Ok(951_868_799_000));
        assert_eq!(parse_datetime("1234"), Ok(1234));
        for bad in [
            "2026-13-01T00:00:00",
            "2026-11-22",
            "yesterday",
            "2026-11-22T25:00:00",
        ] {
            assert!(parse_datetime(bad).is_err(), "{bad}");
        }
    }
}
