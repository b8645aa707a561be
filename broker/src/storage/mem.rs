//! An in-memory disk with power-loss semantics, for tests and the simulator.
//!
//! The simulation owns a [`MemStorage`] per node (it is a cheap, shared handle), so
//! the disk outlives the node's tasks. [`MemStorage::crash`] keeps exactly what a
//! power loss would: file contents as of their last sync, and the directory entries
//! as of each directory's last sync. It can also inject the faults a real disk has:
//! a full disk, failing fsyncs and flipped bytes at rest.

use super::{OpenMode, Storage, StorageFile};
use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

/// A shared handle to one simulated disk. Clones see the same disk.
#[derive(Clone, Debug, Default)]
pub struct MemStorage {
    disk: Arc<Mutex<Disk>>,
    gate: Arc<SyncGate>,
}

/// Holds fsyncs back while a test asks it to (see [`MemStorage::hold_syncs`]).
#[derive(Debug, Default)]
struct SyncGate {
    held: Mutex<bool>,
    released: Condvar,
    /// Set by the first `hold_syncs`: from then on syncs may block, and the
    /// storage says so.
    used: AtomicBool,
}

impl SyncGate {
    fn pass(&self) {
        let mut held = lock(&self.held);
        while *held {
            held = self
                .released
                .wait(held)
                .unwrap_or_else(|poisoned| poisoned.into_inner());
        }
    }
}

#[derive(Debug, Default)]
struct Disk {
    /// What the running node sees.
    live: BTreeMap<PathBuf, Arc<Mutex<MemFile>>>,
    /// Directory entries as of each directory's last sync: what a crash keeps.
    durable: BTreeMap<PathBuf, Arc<Mutex<MemFile>>>,
    dirs: BTreeSet<PathBuf>,
    /// Total bytes the live files may hold; `None` is unlimited.
    capacity: Option<u64>,
    fail_syncs: bool,
    sync_latency: Duration,
    /// Syncs of files and directories so far.
    syncs: u64,
}

#[derive(Debug, Default, Clone)]
struct MemFile {
    data: Vec<u8>,
    /// The contents as of the last sync.
    synced: Vec<u8>,
    /// Lowest byte changed since the last sync; `data.len()` or more when clean.
    dirty_from: usize,
    /// Ranges handed back with `release_cache`, in order.
    released: Vec<(u64, u64)>,
}

/// Locks a mutex, taking the data even if a panicking test thread poisoned it:
/// every critical section here leaves the data consistent at each step.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn not_found(path: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::NotFound,
        format!("{}: no such file", path.display()),
    )
}

impl MemStorage {
    /// An empty disk with no size limit.
    pub fn new() -> Self {
        Self::default()
    }

    /// Simulates a power loss: every file reverts to its last synced contents and
    /// every directory to its last synced entries. Handles opened before the crash
    /// keep pointing at the old, discarded files.
    pub fn crash(&self) {
        let mut disk = lock(&self.disk);
        let survivors: BTreeMap<PathBuf, Arc<Mutex<MemFile>>> = disk
            .durable
            .iter()
            .map(|(path, file)| {
                let synced = lock(file).synced.clone();
                let revived = MemFile {
                    dirty_from: synced.len(),
                    data: synced.clone(),
                    synced,
                    released: Vec::new(),
                };
                (path.clone(), Arc::new(Mutex::new(revived)))
            })
            .collect();
        disk.live = survivors.clone();
        disk.durable = survivors;
    }

    /// Simulates a power loss during which the disk had written back part of
    /// what was pending: each file that had unsynced bytes appended past its
    /// synced contents keeps a pseudo-random prefix of them (chosen by `seed`), so
    /// a last write can be torn anywhere. Otherwise as [`crash`](Self::crash).
    pub fn crash_torn(&self, seed: u64) {
        let mut state = seed;
        let mut next = move || {
            // splitmix64: deterministic and well mixed even for small seeds.
            state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        };
        {
            let disk = lock(&self.disk);
            for file in disk.durable.values() {
                let mut f = lock(file);
                let synced_len = f.synced.len();
                let appended_only = f.data.len() > synced_len
                    && f.dirty_from >= synced_len
                    && f.data.get(..synced_len) == Some(&f.synced[..]);
                if appended_only {
                    let pending = f.data.len() - synced_len;
                    let keep = (next() % (pending as u64 + 1)) as usize;
                    let MemFile { data, synced, .. } = &mut *f;
                    synced.extend_from_slice(&data[synced_len..synced_len + keep]);
                }
            }
        }
        self.crash();
    }

    /// Limits the bytes all files together may hold; writes past it fail with
    /// `StorageFull` after writing what fits, as a full disk does.
    pub fn set_capacity(&self, bytes: Option<u64>) {
        lock(&self.disk).capacity = bytes;
    }

    /// How many syncs (of files and of directories) were asked for so far,
    /// failed ones included.
    pub fn syncs(&self) -> u64 {
        lock(&self.disk).syncs
    }

    /// Makes every following `sync_data` fail (an I/O error), or stops doing so.
    pub fn set_fail_syncs(&self, fail: bool) {
        lock(&self.disk).fail_syncs = fail;
    }

    /// Holds every `sync_data` (blocking its thread) until called again with
    /// `false`; from the first call on, the storage reports that its syncs
    /// block ([`Storage::syncs_block`]), as a disk's do. For tests of what
    /// goes on while an fsync is under way.
    pub fn hold_syncs(&self, hold: bool) {
        self.gate.used.store(true, Ordering::SeqCst);
        *lock(&self.gate.held) = hold;
        self.gate.released.notify_all();
    }

    /// Makes every sync take `latency` of tokio time (see
    /// [`Storage::sync_latency`]); the simulator's disks are not instant.
    pub fn set_sync_latency(&self, latency: Duration) {
        lock(&self.disk).sync_latency = latency;
    }

    /// Flips the bits of the byte at `pos` in `path`, on the medium itself (the
    /// synced copy too): corruption at rest.
    pub fn flip_byte(&self, path: &Path, pos: usize) -> io::Result<()> {
        let disk = lock(&self.disk);
        let file = disk.live.get(path).ok_or_else(|| not_found(path))?;
        let mut file = lock(file);
        let out_of_range = || io::Error::new(io::ErrorKind::InvalidInput, "position past end");
        *file.data.get_mut(pos).ok_or_else(out_of_range)? ^= 0xff;
        if let Some(byte) = file.synced.get_mut(pos) {
            *byte ^= 0xff;
        }
        Ok(())
    }

    /// The ranges (position, length) of `path` released from the cache so
    /// far, for tests.
    pub fn released(&self, path: &Path) -> io::Result<Vec<(u64, u64)>> {
        let disk = lock(&self.disk);
        let file = disk.live.get(path).ok_or_else(|| not_found(path))?;
        let released = lock(file).released.clone();
        Ok(released)
    }

    /// The live contents of `path`, for tests.
    pub fn contents(&self, path: &Path) -> io::Result<Vec<u8>> {
        self.inspect(path, <[u8]>::to_vec)
    }

    /// `f` of the live contents of `path`, without copying them: for
    /// checks that read every log often (the simulator's). The disk is
    /// locked meanwhile.
    pub fn inspect<T>(&self, path: &Path, f: impl FnOnce(&[u8]) -> T) -> io::Result<T> {
        let disk = lock(&self.disk);
        let file = disk.live.get(path).ok_or_else(|| not_found(path))?;
        let result = f(&lock(file).data);
        Ok(result)
    }

    fn used_bytes(disk: &Disk) -> u64 {
        disk.live.values().map(|f| lock(f).data.len() as u64).sum()
    }
}

/// The names of the `paths` directly in `dir` (in their order).
fn children<'a>(
    disk: &Disk,
    dir: &Path,
    paths: impl Iterator<Item = &'a PathBuf>,
) -> io::Result<Vec<String>> {
    if !disk.dirs.contains(dir) {
        return Err(not_found(dir));
    }
    Ok(paths
        .filter(|path| path.parent() == Some(dir))
        .filter_map(|path| path.file_name())
        .map(|name| name.to_string_lossy().into_owned())
        .collect())
}

impl Storage for MemStorage {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        // Directories themselves are durable at once; only their entries are not.
        let mut disk = lock(&self.disk);
        for ancestor in dir.ancestors() {
            disk.dirs.insert(ancestor.to_path_buf());
        }
        Ok(())
    }

    fn list_dir(&self, dir: &Path) -> io::Result<Vec<String>> {
        let disk = lock(&self.disk);
        children(&disk, dir, disk.live.keys())
    }

    fn list_subdirs(&self, dir: &Path) -> io::Result<Vec<String>> {
        let disk = lock(&self.disk);
        children(&disk, dir, disk.dirs.iter())
    }

    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Box<dyn StorageFile>> {
        let mut disk = lock(&self.disk);
        let parent = path.parent().unwrap_or(Path::new(""));
        if !disk.dirs.contains(parent) {
            return Err(not_found(parent));
        }
        let existing = disk.live.get(path).cloned();
        let file = match (mode, existing) {
            (OpenMode::Existing, Some(file)) => file,
            (OpenMode::Existing, None) => return Err(not_found(path)),
            (OpenMode::CreateNew, Some(_)) => {
                return Err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    format!("{}: exists", path.display()),
                ))
            }
            (OpenMode::Truncate, Some(file)) => {
                let mut f = lock(&file);
                f.data.clear();
                f.dirty_from = 0;
                drop(f);
                file
            }
            (OpenMode::CreateNew | OpenMode::Truncate, None) => {
                let file = Arc::new(Mutex::new(MemFile::default()));
                disk.live.insert(path.to_path_buf(), file.clone());
                file
            }
        };
        Ok(Box::new(MemHandle {
            disk: self.disk.clone(),
            gate: self.gate.clone(),
            file,
        }))
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        let mut disk = lock(&self.disk);
        disk.live
            .remove(path)
            .map(|_| ())
            .ok_or_else(|| not_found(path))
    }

    fn remove_dir(&self, dir: &Path) -> io::Result<()> {
        let mut disk = lock(&self.disk);
        if disk.live.keys().any(|path| path.starts_with(dir)) {
            return Err(io::Error::new(
                io::ErrorKind::DirectoryNotEmpty,
                format!("{}: not empty", dir.display()),
            ));
        }
        if !disk.dirs.remove(dir) {
            return Err(not_found(dir));
        }
        disk.durable.retain(|path, _| !path.starts_with(dir));
        Ok(())
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut disk = lock(&self.disk);
        let file = disk.live.remove(from).ok_or_else(|| not_found(from))?;
        disk.live.insert(to.to_path_buf(), file);
        Ok(())
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        let mut disk = lock(&self.disk);
        disk.syncs += 1;
        if disk.fail_syncs {
            return Err(io::Error::other("injected fsync failure"));
        }
        let in_dir = |path: &PathBuf| path.parent() == Some(dir);
        disk.durable.retain(|path, _| !in_dir(path));
        let entries: Vec<_> = disk
            .live
            .iter()
            .filter(|(path, _)| in_dir(path))
            .map(|(path, file)| (path.clone(), file.clone()))
            .collect();
        disk.durable.extend(entries);
        Ok(())
    }

    fn exists(&self, path: &Path) -> bool {
        lock(&self.disk).live.contains_key(path)
    }

    fn syncs_block(&self) -> bool {
        self.gate.used.load(Ordering::SeqCst)
    }

    fn sync_latency(&self) -> Duration {
        lock(&self.disk).sync_latency
    }
}

#[derive(Debug)]
struct MemHandle {
    disk: Arc<Mutex<Disk>>,
    gate: Arc<SyncGate>,
    file: Arc<Mutex<MemFile>>,
}

impl StorageFile for MemHandle {
    fn len(&self) -> io::Result<u64> {
        Ok(lock(&self.file).data.len() as u64)
    }

    fn read_exact_at(&self, buf: &mut [u8], pos: u64) -> io::Result<()> {
        let file = lock(&self.file);
        let start = usize::try_from(pos).unwrap_or(usize::MAX);
        let end = start.saturating_add(buf.len());
        let src = file
            .data
            .get(start..end)
            .ok_or_else(|| io::Error::new(io::ErrorKind::UnexpectedEof, "read past end of file"))?;
        buf.copy_from_slice(src);
        Ok(())
    }

    fn write_all_at(&self, buf: &[u8], pos: u64) -> io::Result<()> {
        let disk = lock(&self.disk);
        let room = match disk.capacity {
            Some(capacity) => capacity.saturating_sub(MemStorage::used_bytes(&disk)),
            None => u64::MAX,
        };
        drop(disk);
        let mut file = lock(&self.file);
        let start = usize::try_from(pos)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "position too large"))?;
        // The file may grow to `max_end`; write what fits, then fail, as a full
        // disk does.
        let max_end = file
            .data
            .len()
            .saturating_add(usize::try_from(room).unwrap_or(usize::MAX));
        let fits = buf.len().min(max_end.saturating_sub(start));
        if fits > 0 {
            if file.data.len() < start + fits {
                file.data.resize(start + fits, 0);
            }
            file.data[start..start + fits].copy_from_slice(&buf[..fits]);
        }
        file.dirty_from = file.dirty_from.min(start);
        if fits < buf.len() {
            return Err(io::Error::new(
                io::ErrorKind::StorageFull,
                "no space left on device",
            ));
        }
        Ok(())
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        let mut file = lock(&self.file);
        let len = usize::try_from(len)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "length too large"))?;
        file.data.resize(len, 0);
        file.dirty_from = file.dirty_from.min(len);
        Ok(())
    }

    fn sync_data(&self) -> io::Result<()> {
        self.gate.pass();
        // The disk lock is never held while taking a file lock here, so the lock
        // order (disk, then file) of the other methods cannot deadlock.
        let fail = {
            let mut disk = lock(&self.disk);
            disk.syncs += 1;
            disk.fail_syncs
        };
        let mut file = lock(&self.file);
        if fail {
            // As Linux does after a failed writeback: the dirty pages are marked
            // clean without reaching the disk, so a later fsync "succeeds" without
            // making them durable. Code that retries an fsync is caught by this.
            file.dirty_from = file.data.len();
            return Err(io::Error::other("injected fsync failure"));
        }
        let from = file.dirty_from.min(file.data.len());
        let MemFile { data, synced, .. } = &mut *file;
        // Bytes between the durable end and `from` were dropped by a failed fsync:
        // the disk never got them, and they read back as zeros.
        synced.resize(from, 0);
        synced.extend_from_slice(data.get(from..).unwrap_or(&[]));
        file.dirty_from = file.data.len();
        Ok(())
    }

    /// Recorded for tests; releasing bytes not yet synced is refused, as it
    /// would be a bug in the caller (the kernel would start writeback and keep
    /// them instead).
    fn release_cache(&self, pos: u64, len: u64) -> io::Result<()> {
        let mut file = lock(&self.file);
        let end = pos.saturating_add(len);
        if end > file.dirty_from.min(file.data.len()) as u64 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("release of {pos}..{end} reaches bytes not synced"),
            ));
        }
        file.released.push((pos, len));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn disk_with_dir() -> (MemStorage, PathBuf) {
        let storage = MemStorage::new();
        let dir = PathBuf::from("/d");
        storage.create_dir_all(&dir).unwrap();
        (storage, dir)
    }

    #[test]
    fn crash_keeps_only_synced_bytes_and_entries() {
        let (storage, dir) = disk_with_dir();
        let synced = dir.join("a");
        let file = storage.open(&synced, OpenMode::CreateNew).unwrap();
        file.write_all_at(b"hello", 0).unwrap();
        file.sync_data().unwrap();
        storage.sync_dir(&dir).unwrap();
        file.write_all_at(b" world", 5).unwrap();
        let unlinked = dir.join("b");
        storage
            .open(&unlinked, OpenMode::CreateNew)
            .unwrap()
            .sync_data()
            .unwrap();

        storage.crash();

        assert_eq!(storage.contents(&synced).unwrap(), b"hello");
        assert!(!storage.exists(&unlinked), "entry never synced in its dir");
    }

    #[test]
    fn sync_after_truncate_and_rewrite_keeps_new_bytes() {
        let (storage, dir) = disk_with_dir();
        let path = dir.join("a");
        let file = storage.open(&path, OpenMode::CreateNew).unwrap();
        storage.sync_dir(&dir).unwrap();
        file.write_all_at(b"abcdef", 0).unwrap();
        file.sync_data().unwrap();
        file.set_len(2).unwrap();
        file.write_all_at(b"XY", 2).unwrap();
        file.sync_data().unwrap();
        storage.crash();
        assert_eq!(storage.contents(&path).unwrap(), b"abXY");
    }

    #[test]
    fn removal_is_undone_by_a_crash_before_dir_sync() {
        let (storage, dir) = disk_with_dir();
        let path = dir.join("a");
        storage.open(&path, OpenMode::CreateNew).unwrap();
        storage.sync_dir(&dir).unwrap();
        storage.remove_file(&path).unwrap();
        assert!(!storage.exists(&path));
        storage.crash();
        assert!(storage.exists(&path));
    }

    #[test]
    fn full_disk_writes_a_prefix_then_fails() {
        let (storage, dir) = disk_with_dir();
        storage.set_capacity(Some(4));
        let file = storage.open(&dir.join("a"), OpenMode::CreateNew).unwrap();
        let err = file.write_all_at(b"abcdef", 0).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::StorageFull);
        assert_eq!(file.len().unwrap(), 4);
    }

    #[test]
    fn a_write_past_the_end_on_a_full_disk_fails_without_panicking() {
        let (storage, dir) = disk_with_dir();
        storage.set_capacity(Some(4));
        let file = storage.open(&dir.join("a"), OpenMode::CreateNew).unwrap();
        let err = file.write_all_at(b"ab", 10).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::StorageFull);
        assert_eq!(file.len().unwrap(), 0, "nothing fits past the room left");
    }

    #[test]
    fn a_failed_fsync_loses_the_dirty_data_even_if_a_later_one_succeeds() {
        let (storage, dir) = disk_with_dir();
        let path = dir.join("a");
        let file = storage.open(&path, OpenMode::CreateNew).unwrap();
        storage.sync_dir(&dir).unwrap();
        file.write_all_at(b"lost", 0).unwrap();
        storage.set_fail_syncs(true);
        assert!(file.sync_data().is_err());
        storage.set_fail_syncs(false);
        file.sync_data().unwrap();
        storage.crash();
        assert_eq!(
            storage.contents(&path).unwrap(),
            [0; 4],
            "the pages never reached the disk"
        );
    }

    #[test]
    fn a_torn_crash_keeps_a_prefix_of_appended_bytes() {
        let mut kept = std::collections::BTreeSet::new();
        for seed in 0..64 {
            let (storage, dir) = disk_with_dir();
            let path = dir.join("a");
            let file = storage.open(&path, OpenMode::CreateNew).unwrap();
            file.write_all_at(b"abc", 0).unwrap();
            file.sync_data().unwrap();
            storage.sync_dir(&dir).unwrap();
            file.write_all_at(b"defgh", 3).unwrap();
            storage.crash_torn(seed);
            let contents = storage.contents(&path).unwrap();
            assert!(
                b"abcdefgh".starts_with(&contents) && contents.len() >= 3,
                "{contents:?}"
            );
            kept.insert(contents.len());
        }
        assert!(kept.len() > 3, "tears at several places: {kept:?}");
    }

    #[test]
    fn injected_sync_failure_is_reported() {
        let (storage, dir) = disk_with_dir();
        let file = storage.open(&dir.join("a"), OpenMode::CreateNew).unwrap();
        storage.set_fail_syncs(true);
        assert!(file.sync_data().is_err());
        assert!(storage.sync_dir(&dir).is_err());
    }
}
