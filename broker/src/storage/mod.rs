//! The narrow file interface the log engine runs on.
//!
//! Two implementations: [`FsStorage`] (real files) and [`MemStorage`] (an in-memory
//! disk the simulation owns, which keeps only what was synced when a simulated node
//! crashes). The engine's logic is the same over both.
//!
//! Durability model, the same as a POSIX file system's: file contents are durable
//! once [`StorageFile::sync_data`] returns; creating, renaming and removing a file is
//! durable once [`Storage::sync_dir`] on its directory returns.

mod direct;
mod fs;
mod mem;

pub use fs::FsStorage;
pub use mem::MemStorage;

use std::fmt;
use std::io;
use std::path::Path;
use std::time::Duration;

/// How [`Storage::open`] treats a file that does or does not exist.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum OpenMode {
    /// The file must exist.
    Existing,
    /// The file must not exist; it is created empty.
    CreateNew,
    /// The file is created if missing and emptied if present.
    Truncate,
}

/// A directory tree of files. Paths are absolute or relative to the storage's root,
/// as the implementation documents.
pub trait Storage: Send + Sync + fmt::Debug {
    /// Creates `dir` and its parents (durably).
    fn create_dir_all(&self, dir: &Path) -> io::Result<()>;
    /// The names of the files directly in `dir`, sorted.
    fn list_dir(&self, dir: &Path) -> io::Result<Vec<String>>;
    /// The names of the directories directly in `dir`, sorted.
    fn list_subdirs(&self, dir: &Path) -> io::Result<Vec<String>>;
    /// Opens `path` for reading and writing.
    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Box<dyn StorageFile>>;
    /// Opens `path` as [`open`](Self::open) does, for a file that grows by
    /// appends at its end from one writer that syncs it: a segment being
    /// written. Appended bytes are readable at once, but may stay in memory
    /// until the next [`StorageFile::sync_data`] (so a crash of the process
    /// loses them, as a power loss would) while
    /// [`StorageFile::hold_appends`] is on, as it is after opening. On disk,
    /// the bytes go around the page cache (`O_DIRECT`) where the file system
    /// allows. By default, the same as `open`.
    fn open_log(&self, path: &Path, mode: OpenMode) -> io::Result<Box<dyn StorageFile>> {
        self.open(path, mode)
    }
    /// Removes the file at `path`.
    fn remove_file(&self, path: &Path) -> io::Result<()>;
    /// Removes the file at `path`, which nothing will read again (a deleted
    /// segment's): on a disk, a large file is first cut down 1 MiB at a
    /// time, each cut made durable, so that the file system frees its blocks
    /// (and, mounted with `discard`, trims them) in small steps. Unlinked
    /// whole, a 256 MiB segment held ext4's journal for 0.3-0.5 s under load,
    /// and every fsync on the disk waited meanwhile. A crash part way leaves
    /// the file shorter. By default, [`remove_file`](Self::remove_file).
    fn remove_dead_file(&self, path: &Path) -> io::Result<()> {
        self.remove_file(path)
    }
    /// Removes the empty directory `dir`.
    fn remove_dir(&self, dir: &Path) -> io::Result<()>;
    /// Renames the directory `from` to `to`, which must not exist. A disk
    /// does; by default `Unsupported` (the in-memory store keeps files, not
    /// directories).
    fn rename_dir(&self, from: &Path, to: &Path) -> io::Result<()> {
        let _ = (from, to);
        Err(io::Error::from(io::ErrorKind::Unsupported))
    }
    /// Renames `from` to `to`, replacing `to` if it exists.
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Makes creations, renames and removals in `dir` durable.
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
    /// Whether a file exists at `path`.
    fn exists(&self, path: &Path) -> bool;
    /// Whether [`StorageFile::sync_data`] blocks its thread for a while (a
    /// disk), so the log's writer should run it on a blocking thread and go
    /// on meanwhile; `false` (the default) runs it in place, as an in-memory
    /// store's instant sync under the simulator must, to stay deterministic.
    fn syncs_block(&self) -> bool {
        false
    }
    /// How long an fsync takes in (tokio) time when it runs in place: the
    /// writer waits that long before running it, and goes on meanwhile. Zero
    /// by default; the simulator gives its disks a latency, so that followers
    /// fetch a leader's records before they are durable there and a power
    /// loss can land in between.
    fn sync_latency(&self) -> Duration {
        Duration::ZERO
    }
}

/// One open file. Every method takes `&self` so readers can share a file with the
/// single writer.
#[allow(clippy::len_without_is_empty)] // a file length, not a collection
pub trait StorageFile: Send + Sync + fmt::Debug {
    /// The file's length in bytes.
    fn len(&self) -> io::Result<u64>;
    /// Fills `buf` from `pos`; an error if the file ends first.
    fn read_exact_at(&self, buf: &mut [u8], pos: u64) -> io::Result<()>;
    /// The `len` bytes from `pos` in a new buffer; an error if the file ends
    /// first. A file on disk reads them into fresh memory without zeroing
    /// it first (the zeroing cost 3% of a broker's CPU on the fetch path).
    fn read_vec_at(&self, len: usize, pos: u64) -> io::Result<Vec<u8>> {
        let mut buf = vec![0; len];
        self.read_exact_at(&mut buf, pos)?;
        Ok(buf)
    }
    /// Writes all of `buf` at `pos`, growing the file as needed. On error some
    /// prefix of `buf` may have been written (as on a full disk).
    fn write_all_at(&self, buf: &[u8], pos: u64) -> io::Result<()>;
    /// Cuts or extends the file to `len` bytes.
    fn set_len(&self, len: u64) -> io::Result<()>;
    /// Makes the file's contents durable (fdatasync).
    fn sync_data(&self) -> io::Result<()>;
    /// For a file from [`Storage::open_log`]: whether appends may wait in
    /// memory for the next sync (`true`, the state after opening) or must
    /// reach the operating system before `write_all_at` returns (`false`; any
    /// waiting now go out). Others ignore it.
    fn hold_appends(&self, _hold: bool) -> io::Result<()> {
        Ok(())
    }
    /// No more appends: makes what was written durable, at its exact
    /// length. A file from [`Storage::open_log`] also writes out what it
    /// holds and cuts the file to that length first (a file written around
    /// the page cache may have run up to a block past it on disk); others
    /// only sync.
    fn finish_appends(&self) -> io::Result<()> {
        self.sync_data()
    }
    /// Advice that the clean (synced) bytes in `pos..pos + len` will not be
    /// read again soon, so the kernel may drop them from its cache. Changes no
    /// content; a store without a cache ignores it.
    fn release_cache(&self, _pos: u64, _len: u64) -> io::Result<()> {
        Ok(())
    }
}

/// Reads a whole file.
pub fn read_file(storage: &dyn Storage, path: &Path) -> io::Result<Vec<u8>> {
    let file = storage.open(path, OpenMode::Existing)?;
    let len = usize::try_from(file.len()?)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "file too large to read"))?;
    file.read_vec_at(len, 0)
}

/// Why a durable metadata write failed.
#[derive(Debug)]
pub enum WriteError {
    /// A write, create or rename failed before anything durable changed (a full
    /// disk, say): the caller may report it and go on.
    Write(io::Error),
    /// An fsync failed: what is on disk is unknown.
    Sync(io::Error),
}

impl std::fmt::Display for WriteError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WriteError::Write(e) => write!(f, "write failed: {e}"),
            WriteError::Sync(e) => write!(f, "fsync failed: {e}"),
        }
    }
}

/// Replaces the file `dir/name` with `contents` atomically and durably: a crash
/// leaves either the old file or the new one, never a mix. A failed write removes
/// its temporary file again.
pub fn write_file_atomic(
    storage: &dyn Storage,
    dir: &Path,
    name: &str,
    contents: &[u8],
) -> Result<(), WriteError> {
    write_files_atomic_unsynced_dir(storage, dir, &[(name, contents)])?;
    storage.sync_dir(dir).map_err(WriteError::Sync)
}

/// [`write_file_atomic`] for several files, but without the directory's
/// sync: each file's contents are durable and renamed into place, and the
/// names become durable with the caller's next `sync_dir` (one for all of
/// them, and for whatever else the caller changes in `dir` meanwhile). Until
/// then a crash leaves each name at its old file or its new one. A failed
/// write removes the temporary files written so far.
pub fn write_files_atomic_unsynced_dir(
    storage: &dyn Storage,
    dir: &Path,
    files: &[(&str, &[u8])],
) -> Result<(), WriteError> {
    let tmp = |name: &str| dir.join(format!("{name}.tmp"));
    for (written, (name, contents)) in files.iter().enumerate() {
        let written_out = storage
            .open(&tmp(name), OpenMode::Truncate)
            .and_then(|file| file.write_all_at(contents, 0).map(|()| file));
        let file = match written_out {
            Ok(file) => file,
            Err(e) => {
                for (earlier, _) in &files[..=written] {
                    let _ = storage.remove_file(&tmp(earlier));
                }
                return Err(WriteError::Write(e));
            }
        };
        file.sync_data().map_err(WriteError::Sync)?;
    }
    for (name, _) in files {
        storage
            .rename(&tmp(name), &dir.join(name))
            .map_err(WriteError::Write)?;
    }
    Ok(())
}
