//! The same engine over real files: append across segments, reopen, recover a
//! torn tail written by a "crash", rebuild a deleted index, hand synced pages
//! back to the kernel.

use crate::support::*;
use raftline_broker::clock::TokioClock;
use raftline_broker::log::{spawn_writer, Log, LogConfig, DEFAULT_CACHED_TAIL as CACHED_TAIL};
use raftline_broker::storage::FsStorage;
use raftline_broker::{LeaderEpoch, LogError, Offset};
use std::sync::Arc;

/// Appends twelve batches of three records, which fill at least three
/// segments of [`small_config`], and syncs them.
fn twelve_synced_batches(mut log: Log) -> Log {
    for i in 0..12 {
        log.append_as_leader(&batch(3, 60, &format!("f{i}")), LeaderEpoch(1))
            .unwrap();
    }
    log.flush(0).unwrap();
    assert!(log.segments().len() >= 3);
    log
}

#[test]
fn a_log_on_disk_survives_reopen_torn_tail_and_lost_index() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("orders-0");
    let open_fs = || Log::open(Arc::new(FsStorage), dir.clone(), small_config()).unwrap();

    let log = twelve_synced_batches(open_fs());
    let end = log.log_end();
    let segments = log.segments();
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

/// Segments are written around the page cache in whole blocks, the last
/// filled up with zeros: a sealed segment is cut to its exact length when it
/// is sealed, the active one when the log is dropped, and after a crash
/// (the log never dropped) the recovery cuts the zeros as a torn tail and
/// keeps every synced batch.
#[test]
fn direct_writes_leave_exact_segments_and_a_crash_only_zeros_to_cut() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("orders-0");
    let open_fs = || Log::open(Arc::new(FsStorage), dir.clone(), small_config()).unwrap();
    let log = twelve_synced_batches(open_fs());
    let end = log.log_end();
    let segments = log.segments();
    let file_len = |base: u64| std::fs::metadata(dir.join(seg(base, "log"))).unwrap().len();
    let (active, sealed) = segments.split_last().unwrap();
    for s in sealed {
        assert_eq!(file_len(s.base.0), s.size, "sealed segment {}", s.base);
    }
    assert_eq!(
        active.size % 4096 != 0,
        file_len(active.base.0) > active.size
    );
    assert_eq!(file_len(active.base.0), active.size.div_ceil(4096) * 4096);
    let reference = read_all(&log, end, 1 << 20);
    // A crash: nothing runs after the last fsync.
    std::mem::forget(log);

    let log = open_fs();
    assert_eq!(log.log_end(), end);
    assert_eq!(read_all(&log, end, 1 << 20), reference);
    let fill = active.size.div_ceil(4096) * 4096 - active.size;
    assert_eq!(log.recovery().truncated_bytes, fill);
    assert_eq!(file_len(active.base.0), active.size);
    drop(log);
    let log = open_fs();
    assert_eq!(
        log.recovery(),
        &Default::default(),
        "a clean reopen cuts nothing"
    );
    assert_eq!(log.log_end(), end);
}

/// Appends wait in memory for their fsync only while every append is
/// synced: a topic switched to another flush policy has the held ones, and
/// every later one, reach the file at once, and its next segment is a plain
/// file.
#[test]
fn without_a_sync_per_append_appends_reach_the_file_at_once() {
    use raftline_broker::log::FlushPolicy;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("orders-0");
    let mut log = Log::open(Arc::new(FsStorage), dir.clone(), small_config()).unwrap();
    let on_disk = || std::fs::metadata(dir.join(seg(0, "log"))).unwrap().len();
    log.append_as_leader(&batch(1, 60, "held"), LeaderEpoch(1))
        .unwrap();
    assert_eq!(on_disk(), 0, "held until the fsync");
    let periodic = LogConfig {
        flush: FlushPolicy::Periodic {
            messages: 1_000,
            interval: std::time::Duration::from_secs(60),
        },
        ..small_config()
    };
    log.set_config(periodic).unwrap();
    let size = |log: &Log| log.segments().last().unwrap().size;
    assert!(on_disk() >= size(&log), "written out by the switch");
    log.append_as_leader(&batch(1, 60, "through"), LeaderEpoch(1))
        .unwrap();
    assert!(on_disk() >= size(&log), "written at once");
    // Until the next segment, which is a plain file of exact length.
    while log.segments().len() < 2 {
        log.append_as_leader(&batch(3, 60, "more"), LeaderEpoch(1))
            .unwrap();
    }
    let active = log.segments().last().unwrap().clone();
    let path = dir.join(seg(active.base.0, "log"));
    assert_eq!(std::fs::metadata(path).unwrap().len(), active.size);
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

/// A log of big batches, fsynced after each append (acks=all), in 16 MiB
/// segments: about 19 MiB in all, so one segment is sealed.
fn append_synced_megabytes(log: &mut Log) -> usize {
    let mut records = 0;
    for i in 0..320 {
        log.append_as_leader(&batch(10, 6_000, &format!("m{i}")), LeaderEpoch(1))
            .unwrap();
        log.flush(0).unwrap();
        records += 10;
    }
    records
}

fn megabyte_segments() -> LogConfig {
    LogConfig {
        segment_bytes: 16 << 20,
        segment_age: None,
        retention_age: None,
        ..LogConfig::default()
    }
}

/// The release ranges of a segment of `size` bytes: from its start, page
/// by page, in steps of at least 1 MiB, up to no closer than [`CACHED_TAIL`]
/// to its end and no further from it than one step.
fn assert_released_behind_the_tail(released: &[(u64, u64)], size: u64) {
    let mut end = 0;
    for &(pos, len) in released {
        assert_eq!(pos, end, "releases follow each other: {released:?}");
        assert_eq!(pos % 4096, 0, "page-aligned: {released:?}");
        assert!(
            len >= 1 << 20 && len % 4096 == 0,
            "whole pages, 1 MiB steps: {released:?}"
        );
        end = pos + len;
    }
    assert!(
        end <= size.saturating_sub(CACHED_TAIL),
        "the last {CACHED_TAIL} bytes stay cached: {end} of {size}"
    );
    assert!(
        end + CACHED_TAIL + (1 << 20) + 4096 > size,
        "everything older than the tail and one step went back: {end} of {size}"
    );
}

#[test]
fn synced_data_behind_the_cached_tail_is_handed_back_to_the_kernel() {
    let (storage, mut log) = fresh(megabyte_segments());
    let records = append_synced_megabytes(&mut log);
    let segments = log.segments();
    assert_eq!(segments.len(), 2, "one sealed segment and the active one");
    for s in &segments {
        let released = storage.released(&path(&seg(s.base.0, "log"))).unwrap();
        assert_released_behind_the_tail(&released, s.size);
    }
    assert!(
        !storage.released(&path(&seg(0, "log"))).unwrap().is_empty(),
        "the sealed segment released its cold pages"
    );
    // An append not yet synced is never released: the in-memory disk refuses
    // that, so the ranges above would stop short. And nothing is lost.
    let end = log.log_end();
    assert_eq!(read_all(&log, end, 1 << 20).len(), records);
}

#[test]
fn without_a_cached_tail_the_page_cache_is_left_to_the_kernel() {
    let (storage, mut log) = fresh(LogConfig {
        cached_tail: None,
        ..megabyte_segments()
    });
    append_synced_megabytes(&mut log);
    for s in log.segments() {
        let released = storage.released(&path(&seg(s.base.0, "log"))).unwrap();
        assert_eq!(released, vec![], "segment at {}", s.base);
    }
}

#[test]
fn released_pages_read_back_from_real_files_before_and_after_a_reopen() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("big-0");
    let open_fs = || Log::open(Arc::new(FsStorage), dir.clone(), megabyte_segments()).unwrap();
    let mut log = open_fs();
    let records = append_synced_megabytes(&mut log);
    let end = log.log_end();
    let reference = read_all(&log, end, 1 << 20);
    assert_eq!(reference.len(), records);
    drop(log);
    let log = open_fs();
    assert_eq!(log.log_end(), end);
    assert_eq!(read_all(&log, end, 1 << 20), reference);
}

#[test]
fn a_file_on_disk_and_one_in_memory_read_the_same_bytes_into_new_buffers() {
    use raftline_broker::storage::{MemStorage, OpenMode, Storage};
    let tmp = tempfile::tempdir().unwrap();
    let content: Vec<u8> = (0..70_000u32).map(|i| (i % 251) as u8).collect();
    let stores: [(Arc<dyn Storage>, std::path::PathBuf); 2] = [
        (Arc::new(FsStorage), tmp.path().join("f")),
        (Arc::new(MemStorage::new()), "/f".into()),
    ];
    for (storage, path) in stores {
        if let Some(dir) = path.parent() {
            storage.create_dir_all(dir).unwrap();
        }
        let file = storage.open(&path, OpenMode::CreateNew).unwrap();
        file.write_all_at(&content, 0).unwrap();
        assert_eq!(file.read_vec_at(0, 0).unwrap(), Vec::<u8>::new());
        assert_eq!(file.read_vec_at(70_000, 0).unwrap(), content);
        assert_eq!(
            file.read_vec_at(1_000, 65_000).unwrap(),
            content[65_000..66_000]
        );
        let past_the_end = file.read_vec_at(10, 69_995).unwrap_err();
        assert_eq!(past_the_end.kind(), std::io::ErrorKind::UnexpectedEof);
    }
}

#[test]
fn cold_bytes_go_back_in_whole_pages_once_a_mebibyte_has_gone_cold() {
    use raftline_broker::log::cold_range;
    let mib = 1 << 20;
    assert_eq!(cold_range(0, CACHED_TAIL + mib - 1, CACHED_TAIL), None);
    assert_eq!(
        cold_range(0, CACHED_TAIL + mib + 100, CACHED_TAIL),
        Some((0, mib))
    );
    assert_eq!(
        cold_range(mib, CACHED_TAIL + 2 * mib + 5000, CACHED_TAIL),
        Some((mib, mib + 4096))
    );
    assert_eq!(cold_range(0, 100, CACHED_TAIL), None);
}

/// The files of segments retention deleted leave the disk, a segment of
/// several MiB cut down a step at a time on a blocking thread
/// (`Storage::remove_dead_file`), while the writer goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_removes_deleted_segments_files_from_the_disk() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("orders-0");
    let config = LogConfig {
        segment_bytes: 4 << 20,
        retention_bytes: Some(4 << 20),
        ..megabyte_segments()
    };
    let mut log = Log::open(Arc::new(FsStorage), dir.clone(), config).unwrap();
    append_synced_megabytes(&mut log);
    let before = log.segments().len();
    assert!(before >= 4, "{before} segments");
    let (handle, _task) = spawn_writer(log, Arc::new(TokioClock::starting_at(0)));
    let out = handle
        .with(|log| log.apply_retention(0, log.log_end()))
        .await
        .unwrap()
        .unwrap();
    assert!(out.deleted_segments.len() >= 2, "{out:?}");
    let gone = |base: &Offset| {
        let prefix = format!("{:020}.", base.0);
        !std::fs::read_dir(&dir).unwrap().any(|e| {
            e.unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with(&prefix)
        })
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !out.deleted_segments.iter().all(gone) {
        assert!(
            std::time::Instant::now() < deadline,
            "deleted segments' files still on disk"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    // What retention kept still reads from its start.
    let start = handle.with(|log| log.log_start()).await.unwrap();
    assert_eq!(start, out.log_start);
    let read = handle.read(start, 1 << 20, Offset(u64::MAX)).await.unwrap();
    assert!(!read.records.is_empty());
}

/// Deleting a log on disk (the partition left this broker): its directory
/// is renamed away at once, so a partition of the same name can start anew
/// there, and removed with its files afterwards, off the caller's path.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_on_disk_is_renamed_away_at_once_and_removed_afterwards() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("orders-0");
    let open_fs = || Log::open(Arc::new(FsStorage), dir.clone(), small_config()).unwrap();
    let (handle, task) = spawn_writer(
        twelve_synced_batches(open_fs()),
        Arc::new(TokioClock::starting_at(0)),
    );
    handle.delete().await.unwrap();
    assert!(!dir.exists());
    assert!(matches!(
        handle.read(Offset(0), 1024, Offset(u64::MAX)).await,
        Err(LogError::WriterStopped)
    ));
    task.await.unwrap().unwrap();
    // The topic created again under its name: a new, empty log.
    let mut again = open_fs();
    assert_eq!(again.log_end(), Offset(0));
    again
        .append_as_leader(&batch(1, 10, "new"), LeaderEpoch(1))
        .unwrap();
    again.flush(0).unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let names: Vec<String> = std::fs::read_dir(tmp.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        if names == ["orders-0"] {
            break;
        }
        assert!(
            names
                .iter()
                .all(|n| n == "orders-0" || n.starts_with("orders-0.") && n.ends_with("-delete")),
            "{names:?}"
        );
        assert!(
            std::time::Instant::now() < deadline,
            "still there: {names:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(read_all(&again, again.log_end(), 1 << 20).len(), 1);
}

/// A deleted log's directory that a stop left behind is removed at the next
/// start, before any log is opened; partition directories stay.
#[test]
fn a_start_removes_what_is_left_of_deleted_logs() {
    use raftline_broker::log::DELETED_DIR_SUFFIX;
    use raftline_broker::replica::recover_local_logs;
    use raftline_broker::storage::Storage;
    let tmp = tempfile::tempdir().unwrap();
    let storage: Arc<dyn Storage> = Arc::new(FsStorage);
    for name in ["orders-0", "orders-1"] {
        twelve_synced_batches(
            Log::open(storage.clone(), tmp.path().join(name), small_config()).unwrap(),
        );
    }
    let left = tmp.path().join(format!("orders-1.17{DELETED_DIR_SUFFIX}"));
    std::fs::rename(tmp.path().join("orders-1"), &left).unwrap();
    std::fs::write(left.join(seg(0, "log")), vec![1u8; 3 << 20]).unwrap();
    assert!(recover_local_logs(&storage, tmp.path(), &small_config()).is_empty());
    assert!(!left.exists());
    let log = Log::open(storage, tmp.path().join("orders-0"), small_config()).unwrap();
    assert_eq!(read_all(&log, log.log_end(), 1 << 20).len(), 36);
}

/// Appends through the writer on real files, rolling several times: a roll
/// runs as blocking code on a multi-threaded runtime and in place on a
/// current-thread one, and either way every acknowledged record is on disk
/// after a reopen, in segments with their index files.
async fn appends_through_rolls_on_disk() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("orders-0");
    let (handle, task) = writer_on_disk(&dir);
    let appends: Vec<_> = (0..12)
        .map(|i| {
            let handle = handle.clone();
            tokio::spawn(async move {
                handle
                    .append_as_leader(batch(3, 60, &format!("w{i}")), LeaderEpoch(1))
                    .await
            })
        })
        .collect();
    for append in appends {
        append.await.unwrap().unwrap();
    }
    drop(handle);
    task.await.unwrap().unwrap();
    let log = Log::open(Arc::new(FsStorage), dir.clone(), small_config()).unwrap();
    assert_eq!(log.log_end(), Offset(36));
    assert_eq!(read_all(&log, Offset(36), 1 << 20).len(), 36);
    let segments = log.segments();
    assert!(segments.len() >= 3, "{segments:?}");
    assert_eq!(log.recovery().rebuilt_indexes, Vec::<Offset>::new());
    for sealed in &segments[..segments.len() - 1] {
        assert!(dir.join(seg(sealed.base.0, "index")).exists());
        assert!(dir.join(seg(sealed.base.0, "timeindex")).exists());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rolls_run_off_a_multi_threaded_runtime_and_keep_every_append() {
    appends_through_rolls_on_disk().await;
}

#[tokio::test]
async fn rolls_run_in_place_on_a_current_thread_runtime_and_keep_every_append() {
    appends_through_rolls_on_disk().await;
}

/// A writer task over a new log in `dir` on the real file system.
fn writer_on_disk(
    dir: &std::path::Path,
) -> (
    raftline_broker::log::LogHandle,
    tokio::task::JoinHandle<Result<(), LogError>>,
) {
    let log = Log::open(Arc::new(FsStorage), dir.to_path_buf(), small_config()).unwrap();
    spawn_writer(log, Arc::new(TokioClock::starting_at(0)))
}

/// A job that may wait on the disk for long (`with_blocking`: retention and
/// compaction passes) runs as blocking code on a multi-threaded runtime: with a single worker thread,
/// a task woken by the job still runs while the job waits. Run in place,
/// the job would hold the only worker and wait out its 10 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn a_job_that_waits_on_the_disk_leaves_the_runtime_to_other_tasks() {
    let tmp = tempfile::tempdir().unwrap();
    let (handle, task) = writer_on_disk(&tmp.path().join("orders-0"));
    let (started, on_start) = tokio::sync::oneshot::channel::<()>();
    let (go, on_go) = std::sync::mpsc::channel::<()>();
    let other = tokio::spawn(async move {
        on_start.await.unwrap();
        go.send(()).unwrap();
    });
    let answered = handle
        .with_blocking(move |log| {
            started.send(()).unwrap();
            let answered = on_go
                .recv_timeout(std::time::Duration::from_secs(10))
                .is_ok();
            (answered, log.log_end())
        })
        .await
        .unwrap();
    assert_eq!(
        answered,
        (true, Offset(0)),
        "the other task ran beside the job"
    );
    other.await.unwrap();
    drop(handle);
    task.await.unwrap().unwrap();
}

/// On a current-thread runtime (the simulator's) the same job runs in place.
#[tokio::test]
async fn a_job_that_waits_on_the_disk_runs_in_place_on_a_current_thread_runtime() {
    let tmp = tempfile::tempdir().unwrap();
    let (handle, task) = writer_on_disk(&tmp.path().join("orders-0"));
    handle
        .append_as_leader(batch(3, 60, "a"), LeaderEpoch(1))
        .await
        .unwrap();
    let end = handle
        .with_blocking(|log| log.truncate_to(Offset(0)).map(|_| log.log_end()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(end, Offset(0));
    drop(handle);
    task.await.unwrap().unwrap();
}
