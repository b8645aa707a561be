//! `raftline produce` and `raftline consume`: records between a terminal (or
//! a pipe) and a topic, over the Rust client.

use crate::Output;
use anyhow::{anyhow, bail, Result};
use bytes::Bytes;
use raftline::client::{
    Acks, Client, ClientConfig, ClientError, Consumer, ConsumerRecord, GroupConsumer, Producer,
    ProducerRecord, Sent, StartAt,
};
use serde_json::json;
use std::collections::BTreeMap;
use std::io::Write;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};

/// Lines gathered into one send.
const MAX_LINES_PER_SEND: usize = 10_000;
/// How long stdin may pause before what was read is sent.
const LINGER: Duration = Duration::from_millis(5);

/// `--acks`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum AcksArg {
    /// Every in-sync replica (at least min.insync.replicas).
    All,
    /// The leader only.
    #[value(name = "1")]
    One,
    /// Nobody: fire and forget.
    #[value(name = "0")]
    Zero,
}

/// Now, in ms since the epoch: a record's create time.
pub fn now_ms() -> i64 {
    use raftline_broker::clock::Clock;
    raftline_broker::clock::SystemClock.now_ms()
}

/// Connects a client to `servers`.
pub async fn connect(servers: &str, delivery_timeout: Option<Duration>) -> Result<Client> {
    let mut config = ClientConfig::new(servers);
    if let Some(t) = delivery_timeout {
        config.delivery_timeout = t;
    }
    Ok(Client::connect(config).await?)
}

/// Sends stdin, one record per line, `key<SEP>value` with a key separator.
pub async fn produce(
    client: Client,
    topic: &str,
    acks: AcksArg,
    key_separator: Option<String>,
    output: Output,
) -> Result<()> {
    let acks = match acks {
        AcksArg::All => Acks::All,
        AcksArg::One => Acks::Leader,
        AcksArg::Zero => Acks::None,
    };
    if key_separator.as_deref() == Some("") {
        bail!("--key-separator must not be empty");
    }
    let mut producer = Producer::new(client, topic, acks).await?;
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    let mut sent: Vec<Sent> = Vec::new();
    let mut done = false;
    while !done {
        let mut batch = Vec::new();
        // Block for the first line, then take what follows without a pause.
        match lines.next_line().await? {
            Some(line) => batch.push(line),
            None => break,
        }
        while batch.len() < MAX_LINES_PER_SEND {
            match tokio::time::timeout(LINGER, lines.next_line()).await {
                Ok(Ok(Some(line))) => batch.push(line),
                Ok(Ok(None)) => {
                    done = true;
                    break;
                }
                Ok(Err(e)) => return Err(e.into()),
                Err(_) => break,
            }
        }
        let timestamp = now_ms();
        let records = batch
            .into_iter()
            .map(|line| {
                let (key, value) = match &key_separator {
                    Some(sep) => match line.split_once(sep.as_str()) {
                        Some((k, v)) => (Some(Bytes::from(k.to_string())), v.to_string()),
                        None => (None, line),
                    },
                    None => (None, line),
                };
                ProducerRecord {
                    key,
                    value: Some(Bytes::from(value)),
                    timestamp,
                }
            })
            .collect();
        match producer.send(records).await {
            Ok(s) => sent.extend(s),
            Err(e) => {
                let acked: usize = sent.iter().map(|s| s.count).sum();
                return Err(anyhow!(
                    "{e} ({acked} records were acknowledged before this; the rest of the input was not sent)"
                ));
            }
        }
    }
    report_produced(topic, &sent, acks, output);
    Ok(())
}

fn report_produced(topic: &str, sent: &[Sent], acks: Acks, output: Output) {
    let mut per: BTreeMap<u32, (usize, Option<u64>, Option<u64>)> = BTreeMap::new();
    for s in sent {
        let e = per.entry(s.partition).or_insert((0, None, None));
        e.0 += s.count;
        if let Some(base) = s.base_offset {
            e.1 = Some(e.1.map_or(base, |f: u64| f.min(base)));
            let last = base + s.count as u64 - 1;
            e.2 = Some(e.2.map_or(last, |l: u64| l.max(last)));
        }
    }
    let total: usize = per.values().map(|e| e.0).sum();
    match output {
        Output::Json => {
            let partitions: Vec<_> = per
                .iter()
                .map(|(p, (n, first, last))| json!({"partition": p, "records": n, "first_offset": first, "last_offset": last}))
                .collect();
            println!(
                "{}",
                json!({"topic": topic, "records": total, "acks": acks.as_str_name(), "partitions": partitions})
            );
        }
        Output::Table => {
            let parts: Vec<String> = per
                .iter()
                .map(|(p, (n, first, last))| match (first, last) {
                    (Some(f), Some(l)) => format!("partition {p}: {n} (offsets {f}..={l})"),
                    _ => format!("partition {p}: {n}"),
                })
                .collect();
            eprintln!(
                "Produced {total} records to {topic}{}",
                if parts.is_empty() {
                    String::new()
                } else {
                    format!(": {}", parts.join(", "))
                }
            );
        }
    }
}

/// What `consume` prints and when it stops.
pub struct ConsumeOptions {
    /// Read from the log start instead of the end.
    pub from_beginning: bool,
    /// One partition only.
    pub partition: Option<u32>,
    /// Its start offset.
    pub offset: Option<u64>,
    /// Stop after this many records.
    pub max_messages: Option<u64>,
    /// Stop after this long without a record.
    pub timeout: Option<Duration>,
    /// Print the key before the value.
    pub print_key: bool,
    /// Print the partition and offset before the value.
    pub print_offset: bool,
}

/// Where `consume` gets records: a plain consumer or a group member.
pub trait RecordSource {
    /// The next records, waiting up to `wait`.
    async fn poll(&mut self, wait: Duration) -> Result<Vec<ConsumerRecord>, ClientError>;
    /// `record` was not printed (the run ends first).
    fn unconsume(&mut self, record: &ConsumerRecord);
}

impl RecordSource for Consumer {
    async fn poll(&mut self, wait: Duration) -> Result<Vec<ConsumerRecord>, ClientError> {
        Consumer::poll(self, wait).await
    }

    fn unconsume(&mut self, _record: &ConsumerRecord) {}
}

impl RecordSource for GroupConsumer {
    async fn poll(&mut self, wait: Duration) -> Result<Vec<ConsumerRecord>, ClientError> {
        GroupConsumer::poll(self, wait).await
    }

    fn unconsume(&mut self, record: &ConsumerRecord) {
        GroupConsumer::unconsume(self, record);
    }
}

/// Prints the topic's records, one value per line.
pub async fn consume(client: Client, topic: &str, o: ConsumeOptions, output: Output) -> Result<()> {
    let start = match (o.offset, o.from_beginning) {
        (Some(offset), _) => StartAt::Offset(offset),
        (None, true) => StartAt::Earliest,
        (None, false) => StartAt::Latest,
    };
    let mut consumer = Consumer::new(client, topic, o.partition.map(|p| vec![p]), start).await?;
    let seen = print_records(&mut consumer, &o, output).await?;
    eprintln!("Processed a total of {seen} messages");
    Ok(())
}

/// Prints what `source` gives until --max-messages, --timeout-ms or Ctrl-C;
/// returns how many records it printed.
pub async fn print_records(
    source: &mut impl RecordSource,
    o: &ConsumeOptions,
    output: Output,
) -> Result<u64> {
    let mut seen: u64 = 0;
    let mut last_record = tokio::time::Instant::now();
    let stdout = std::io::stdout();
    let interrupted = tokio::signal::ctrl_c();
    tokio::pin!(interrupted);
    loop {
        if o.max_messages.is_some_and(|max| seen >= max) {
            break;
        }
        let wait = match o.timeout {
            Some(t) => match t.checked_sub(last_record.elapsed()) {
                Some(left) => left,
                None => break,
            },
            None => Duration::from_secs(1),
        };
        let polled = tokio::select! {
            _ = &mut interrupted => break,
            polled = source.poll(wait) => polled,
        };
        let records = match polled {
            Ok(records) => records,
            Err(e) if e.retriable() => {
                tracing::debug!(error = %e, "fetch failed; retrying");
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        if records.is_empty() {
            continue;
        }
        last_record = tokio::time::Instant::now();
        let mut out = stdout.lock();
        for record in records {
            if o.max_messages.is_some_and(|max| seen >= max) {
                // Not printed: a group reads it again.
                source.unconsume(&record);
                continue;
            }
            print_record(&mut out, &record, o, output)?;
            seen += 1;
        }
        out.flush()?;
    }
    Ok(seen)
}

fn text(bytes: &Option<Bytes>) -> String {
    match bytes {
        Some(b) => String::from_utf8_lossy(b).into_owned(),
        None => "null".into(),
    }
}

pub fn print_record(
    out: &mut impl Write,
    r: &ConsumerRecord,
    o: &ConsumeOptions,
    output: Output,
) -> Result<()> {
    match output {
        Output::Json => writeln!(
            out,
            "{}",
            json!({
                "partition": r.partition,
                "offset": r.offset,
                "timestamp": r.timestamp,
                "key": r.key.as_ref().map(|k| String::from_utf8_lossy(k).into_owned()),
                "value": r.value.as_ref().map(|v| String::from_utf8_lossy(v).into_owned()),
            })
        )?,
        Output::Table => {
            if o.print_offset {
                write!(out, "Partition:{}\tOffset:{}\t", r.partition, r.offset)?;
            }
            if o.print_key {
                write!(out, "{}\t", text(&r.key))?;
            }
            writeln!(out, "{}", text(&r.value))?;
        }
    }
    Ok(())
}
