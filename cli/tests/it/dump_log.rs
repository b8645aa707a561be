//! `raftline dump-log` on a log written by the broker's engine.

use bytes::BytesMut;
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use raftline_broker::log::{Log, LogConfig};
use raftline_broker::storage::FsStorage;
use raftline_broker::LeaderEpoch;
use std::process::Command;
use std::sync::Arc;

fn batch(count: usize) -> Vec<u8> {
    let records: Vec<Record> = (0..count)
        .map(|i| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: 0,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            sequence: i as i32,
            timestamp: 1_000 + i as i64,
            key: None,
            value: Some(vec![b'v'; 100].into()),
            headers: Default::default(),
        })
        .collect();
    let mut buf = BytesMut::new();
    let options = RecordEncodeOptions {
        version: 2,
        compression: Compression::None,
    };
    RecordBatchEncoder::encode(&mut buf, &records, &options).unwrap();
    buf.to_vec()
}

fn dump(dir: &std::path::Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_raftline"))
        .arg("dump-log")
        .arg(dir)
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

#[test]
fn dump_log_reports_segments_batches_and_damage() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("orders-0");
    let config = LogConfig {
        segment_bytes: 2048,
        ..LogConfig::default()
    };
    let mut log = Log::open(Arc::new(FsStorage), dir.clone(), config).unwrap();
    for epoch in [1, 1, 2, 2, 2, 3] {
        log.append_as_leader(&batch(4), LeaderEpoch(epoch)).unwrap();
    }
    log.flush(0).unwrap();
    let segments = log.segments();
    assert!(segments.len() >= 2);
    drop(log);

    // JSON: every segment, offsets chained, records counted.
    let (code, stdout, _) = dump(&dir, &["--output", "json", "--batches"]);
    assert_eq!(code, 0, "{stdout}");
    let parsed: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let listed = parsed.as_array().unwrap();
    assert_eq!(listed.len(), segments.len());
    let records: u64 = listed.iter().map(|s| s["records"].as_u64().unwrap()).sum();
    assert_eq!(records, 24);
    let epochs: Vec<u64> = listed
        .iter()
        .flat_map(|s| {
            s["batch_list"]
                .as_array()
                .unwrap()
                .iter()
                .map(|b| b["leader_epoch"].as_u64().unwrap())
        })
        .collect();
    assert_eq!(epochs, vec![1, 1, 2, 2, 2, 3]);
    for (seg, want) in listed.iter().zip(&segments) {
        assert_eq!(seg["base_offset"].as_u64(), Some(want.base.0));
        assert_eq!(seg["next_offset"].as_u64(), Some(want.next_offset.0));
        assert_eq!(seg["status"], "ok");
    }

    // Table output names the columns.
    let (code, stdout, _) = dump(&dir, &[]);
    assert_eq!(code, 0);
    assert!(stdout.starts_with("SEGMENT"), "{stdout}");

    // A torn tail is reported and the exit code says so; the file is untouched.
    let last = dir.join(format!("{:020}.log", segments.last().unwrap().base.0));
    let mut bytes = std::fs::read(&last).unwrap();
    bytes.extend_from_slice(&[7; 20]);
    std::fs::write(&last, &bytes).unwrap();
    let (code, stdout, _) = dump(&dir, &["--output", "json"]);
    assert_eq!(code, 1);
    assert!(stdout.contains("torn batch header"), "{stdout}");
    assert_eq!(
        std::fs::read(&last).unwrap().len(),
        bytes.len(),
        "dump-log must not repair"
    );

    // Zeros to the end (a crash before the data reached the disk, or a direct
    // write's block fill) are a torn tail, as a broker's recovery has them;
    // other bytes there are damage.
    let whole = bytes.len() - 20;
    bytes.truncate(whole);
    bytes.extend_from_slice(&[0; 4096]);
    let mut damaged = bytes.clone();
    damaged[whole + 3000] = 1;
    for (contents, status) in [
        (bytes, format!("torn tail at byte {whole}: 4096 zero bytes")),
        (damaged, format!("corrupt batch at byte {whole}")),
    ] {
        std::fs::write(&last, &contents).unwrap();
        let (code, stdout, _) = dump(&dir, &[]);
        assert_eq!(code, 1);
        assert!(stdout.contains(&status), "{stdout}");
    }

    // A directory without segments is a clear error.
    let (code, _, stderr) = dump(tmp.path(), &[]);
    assert_eq!(code, 2);
    assert!(stderr.contains("no .log segment files"), "{stderr}");
}
