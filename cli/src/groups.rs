//! `raftline group ...` and `raftline consume --group`: consumer groups from
//! the command line, as kafka-consumer-groups.sh and the console consumer
//! offer them.

use crate::data::{print_records, ConsumeOptions};
use crate::table::print_rows;
use crate::Output;
use anyhow::{bail, Context, Result};
use raftline::client::{is_non_empty_group, Client, GroupConfig, GroupConsumer, StartAt};
pub use raftline_proto::pb::reset_offsets_request::To;
use serde_json::json;

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

/// `group describe G`: state and members, then per partition the committed
/// offset, the log end and the lag, with its owner.
pub async fn describe(client: &Client, group: &str, output: Output) -> Result<()> {
    let d = client.describe_group(group).await?;
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
                "partitions": d.partitions.iter().map(|p| json!({
                    "topic": p.topic,
                    "partition": p.partition,
                    "committed_offset": p.committed_offset,
                    "log_end_offset": p.log_end_offset,
                    "lag": p.lag,
                    "member": p.member_id,
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
            let rows: Vec<[String; 6]> = d
                .partitions
                .iter()
                .map(|p| {
                    [
                        p.topic.clone(),
                        p.partition.to_string(),
                        cell(p.committed_offset),
                        cell(p.log_end_offset),
                        cell(p.lag),
                        p.member_id.clone().unwrap_or_else(|| "-".into()),
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
    to: To,
    execute: bool,
    output: Output,
) -> Result<()> {
    let plan = client
        .reset_offsets(group, topic, to, !execute)
        .await
        .with_context(|| format!("group {group:?} was not changed"))?;
    match output {
        Output::Json => println!(
            "{}",
            json!({
                "group": group,
                "executed": execute,
                "partitions": plan.iter().map(|p| json!({
                    "topic": p.topic, "partition": p.partition,
                    "current_offset": p.current_offset, "new_offset": p.new_offset,
                })).collect::<Vec<_>>(),
            })
        ),
        Output::Table => {
            let rows: Vec<[String; 4]> = plan
                .iter()
                .map(|p| {
                    [
                        p.topic.clone(),
                        p.partition.to_string(),
                        p.current_offset.map_or("-".into(), |c| c.to_string()),
                        p.new_offset.to_string(),
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
