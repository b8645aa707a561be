//! `raftline dump-log`: a read-only walk over a partition directory's segments.
//! It never opens the log for writing, so it neither recovers nor truncates:
//! it reports what a broker would find.

use crate::table::print_rows;
use crate::Output;
use anyhow::{bail, Context, Result};
use raftline_broker::log::{BatchHeader, DAMAGE_SEARCH_MAX, HEADER_LEN};
use serde::Serialize;
use std::fs::File;
use std::io::{ErrorKind, Read, Seek, SeekFrom};
use std::path::Path;
use std::process::ExitCode;

#[derive(Serialize)]
struct Segment {
    file: String,
    base_offset: u64,
    next_offset: u64,
    batches: u64,
    records: u64,
    bytes: u64,
    /// `ok`, or where and why the valid data ends.
    status: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    batch_list: Vec<Batch>,
}

#[derive(Serialize)]
struct Batch {
    position: u64,
    base_offset: u64,
    last_offset: u64,
    records: u32,
    leader_epoch: u32,
    size: u32,
    max_timestamp: i64,
}

/// Prints the directory's segments (and batches); exits 1 if any segment has a
/// torn or corrupt tail, so scripts can check a directory.
pub fn run(dir: &Path, with_batches: bool, output: Output) -> Result<ExitCode> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .with_context(|| {
            format!(
                "cannot read {}: is it a partition directory such as data/node1/orders-0?",
                dir.display()
            )
        })?
        .filter_map(|entry| entry.ok())
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".log"))
        .collect();
    names.sort();
    if names.is_empty() {
        bail!("{} holds no .log segment files", dir.display());
    }
    let segments = names
        .iter()
        .map(|name| scan(&dir.join(name), name, with_batches))
        .collect::<Result<Vec<_>>>()?;
    match output {
        Output::Json => println!("{}", serde_json::to_string_pretty(&segments)?),
        Output::Table => print_table(&segments, with_batches),
    }
    let clean = segments.iter().all(|s| s.status == "ok");
    Ok(if clean {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn scan(path: &Path, name: &str, with_batches: bool) -> Result<Segment> {
    let base_offset = name
        .strip_suffix(".log")
        .and_then(|digits| digits.parse::<u64>().ok())
        .with_context(|| format!("{name}: not a segment name (<20 digits>.log)"))?;
    let mut file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut segment = Segment {
        file: name.to_string(),
        base_offset,
        next_offset: base_offset,
        batches: 0,
        records: 0,
        bytes: 0,
        status: "ok".into(),
        batch_list: Vec::new(),
    };
    let mut buf = vec![0u8; HEADER_LEN];
    loop {
        buf.resize(HEADER_LEN, 0);
        match read_full(&mut file, &mut buf)? {
            0 => break,
            n if n < HEADER_LEN => {
                segment.status = format!("torn batch header at byte {}", segment.bytes);
                break;
            }
            _ => {}
        }
        let header = match BatchHeader::parse(&buf) {
            Ok(header) => header,
            Err(e) => {
                segment.status = damage(&mut file, segment.bytes, format!("{e}"))?;
                break;
            }
        };
        buf.resize(header.size as usize, 0);
        if read_full(&mut file, &mut buf[HEADER_LEN..])? < header.size as usize - HEADER_LEN {
            segment.status = format!("torn batch at byte {}", segment.bytes);
            break;
        }
        if let Err(e) = header.verify_crc(&buf) {
            segment.status = damage(&mut file, segment.bytes, format!("{e}"))?;
            break;
        }
        // A gap is fine (a compacted topic's cleaner removes whole batches);
        // going back is not.
        if header.base_offset.0 < segment.next_offset {
            let why = format!(
                "offset {}, expected at least {}",
                header.base_offset, segment.next_offset
            );
            segment.status = damage(&mut file, segment.bytes, why)?;
            break;
        }
        if with_batches {
            segment.batch_list.push(Batch {
                position: segment.bytes,
                base_offset: header.base_offset.0,
                last_offset: header.last_offset().0,
                records: header.record_count,
                leader_epoch: header.leader_epoch.0,
                size: header.size,
                max_timestamp: header.max_timestamp,
            });
        }
        segment.batches += 1;
        segment.records += u64::from(header.record_count);
        segment.bytes += u64::from(header.size);
        segment.next_offset = header.next_offset().0;
    }
    Ok(segment)
}

/// How the valid data of a segment ends at byte `pos`, where a batch did not
/// check out (`why`). By the rule of a broker's recovery: only zeros from
/// there (looked at up to [`DAMAGE_SEARCH_MAX`] bytes) are a torn tail (a
/// crash before the file system wrote the data, or the block fill of a
/// direct write), anything else is damage.
fn damage(file: &mut File, pos: u64, why: String) -> Result<String> {
    file.seek(SeekFrom::Start(pos))?;
    let mut rest = Vec::new();
    file.take(DAMAGE_SEARCH_MAX as u64).read_to_end(&mut rest)?;
    Ok(if rest.iter().all(|&b| b == 0) {
        format!(
            "torn tail at byte {pos}: {} zero bytes (a broker cuts them when it opens the log)",
            rest.len()
        )
    } else {
        format!("corrupt batch at byte {pos}: {why}")
    })
}

/// Reads until `buf` is full or the file ends; returns the bytes read.
fn read_full(file: &mut File, buf: &mut [u8]) -> Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match file.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(filled)
}

fn print_table(segments: &[Segment], with_batches: bool) {
    let rows: Vec<[String; 7]> = segments
        .iter()
        .map(|s| {
            [
                s.file.clone(),
                s.base_offset.to_string(),
                s.next_offset.to_string(),
                s.batches.to_string(),
                s.records.to_string(),
                s.bytes.to_string(),
                s.status.clone(),
            ]
        })
        .collect();
    print_rows(
        [
            "SEGMENT", "BASE", "NEXT", "BATCHES", "RECORDS", "BYTES", "STATUS",
        ],
        &rows,
    );
    if with_batches {
        let rows: Vec<[String; 7]> = segments
            .iter()
            .flat_map(|s| s.batch_list.iter().map(move |b| (s, b)))
            .map(|(s, b)| {
                [
                    s.file.clone(),
                    b.position.to_string(),
                    format!("{}-{}", b.base_offset, b.last_offset),
                    b.records.to_string(),
                    b.leader_epoch.to_string(),
                    b.size.to_string(),
                    b.max_timestamp.to_string(),
                ]
            })
            .collect();
        println!();
        print_rows(
            [
                "SEGMENT",
                "POSITION",
                "OFFSETS",
                "RECORDS",
                "EPOCH",
                "BYTES",
                "MAX_TIMESTAMP",
            ],
            &rows,
        );
    }
}
