//! The same engine over real files: append across segments, reopen, recover a
//! torn tail written by a "crash", rebuild a deleted index.

use crate::support::*;
use raftline_broker::log::Log;
use raftline_broker::storage::FsStorage;
use raftline_broker::{LeaderEpoch, Offset};
use std::sync::Arc;

#[test]
fn a_log_on_disk_survives_reopen_torn_tail_and_lost_index() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("orders-0");
    let open_fs = || Log::open(Arc::new(FsStorage), dir.clone(), small_config()).unwrap();

    let mut log = open_fs();
    for i in 0..12 {
        log.append_as_leader(&batch(3, 60, &format!("f{i}")), LeaderEpoch(1))
            .unwrap();
    }
    log.flush(0).unwrap();
    let end = log.log_end();
    let segments = log.segments();
    assert!(segments.len() >= 3);
    let reference = read_all(&log, end, 1 << 20);
    assert_eq!(reference.len(), 36);
    drop(log);

    // Clean reopen.
    let log = open_fs();
    assert_eq!(log.log_end(), end);
    assert_eq!(log.recovery(), &Default::default());
    drop(log);

    // A torn write: 17 bytes of a batch header at the end of the active segment.
    let active = dir.join(seg(segments.last().unwrap().base.0, "log"));
    let mut bytes = std::fs::read(&active).unwrap();
    let good_len = bytes.len();
    bytes.extend_from_slice(&[0xAB; 17]);
    std::fs::write(&active, &bytes).unwrap();
    // And a lost index of a sealed segment.
    std::fs::remove_file(dir.join(seg(0, "index"))).unwrap();

    let log = open_fs();
    assert_eq!(log.log_end(), end);
    assert_eq!(log.recovery().truncated_bytes, 17);
    assert_eq!(log.recovery().rebuilt_indexes, vec![Offset(0)]);
    assert_eq!(std::fs::metadata(&active).unwrap().len() as usize, good_len);
    assert!(dir.join(seg(0, "index")).exists());
    assert_eq!(read_all(&log, end, 1 << 20), reference);
    assert_eq!(
        read_all(&log, end, 1),
        reference,
        "reads of one batch at a time agree"
    );
}

#[test]
fn a_start_finds_damage_in_real_partition_directories() {
    use raftline_broker::replica::{clear_damage_marks, recover_local_logs};
    use raftline_broker::storage::Storage;
    let tmp = tempfile::tempdir().unwrap();
    let storage: Arc<dyn Storage> = Arc::new(FsStorage);
    for name in ["orders-0", "orders-1"] {
        let mut log = Log::open(storage.clone(), tmp.path().join(name), small_config()).unwrap();
        log.append_as_leader(&batch(3, 60, name), LeaderEpoch(1))
            .unwrap();
        log.flush(0).unwrap();
    }
    std::fs::write(tmp.path().join("orders-2"), b"a file, not a partition").unwrap();
    let segment = tmp.path().join("orders-1").join(seg(0, "log"));
    let mut bytes = std::fs::read(&segment).unwrap();
    bytes[40] ^= 0xff;
    std::fs::write(&segment, &bytes).unwrap();
    let damaged = recover_local_logs(&storage, tmp.path(), &small_config());
    assert_eq!(
        damaged,
        vec![raftline_broker::TopicPartition {
            topic: "orders".into(),
            partition: 1
        }]
    );
    assert!(tmp.path().join("orders-1").join("damaged").exists());
    clear_damage_marks(&*storage, tmp.path(), &damaged);
    assert!(recover_local_logs(&storage, tmp.path(), &small_config()).is_empty());
}
