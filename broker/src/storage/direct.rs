//! A log segment's file written around the page cache (`O_DIRECT`).
//!
//! A buffered `pwrite` copies every appended byte into a page-cache page (on
//! this VM often a page the host must back first), the fsync writes it out
//! and the log then hands the page back: three replicas pay that for every
//! byte. A direct write hands the disk the writer's own buffer instead.
//! Measured with write + fdatasync of 256 KiB: 0.22-0.30 system CPU-s per GB
//! direct against 0.52-0.56 buffered, and 790-840 MB/s against 600-615
//! (docs/BENCHMARKS.md, "Segment writes around the page cache").
//!
//! Direct writes must start and end on block boundaries and come from
//! aligned memory, so appends are gathered in an aligned buffer that starts
//! at the block holding the end of what the file already has (that block's
//! bytes are carried over). [`sync_data`](StorageFile::sync_data) writes
//! them with one direct write, the last block filled up with zeros, then
//! fsyncs: three disk requests per sync (data, metadata, flush) where
//! writing the partial block through the page cache made four, and 10-30%
//! more MB/s at 60-250 KB per sync. So the file on disk may run up to a
//! block past its length; [`len`](StorageFile::len) is the length written,
//! and the zeros go when the file is cut to it: when appends end
//! ([`StorageFile::finish_appends`], durably) or the file is dropped.
//! A crash leaves them to the log's recovery, which cuts zeros after the
//! last whole batch as a torn tail.
//! The write happens on the thread that syncs, which the log's writer runs
//! off the runtime: an append costs the writer one memory copy.
//!
//! Appended bytes are readable at once (reads take them from the buffer),
//! but until the next sync they are only in this process: a crash of the
//! process loses them as a power loss would. The log opens segments this
//! way only while every append is fsynced before it is acknowledged; if
//! that changes, [`StorageFile::hold_appends`] `false` has each append
//! written out at once.

use super::fs::{read_file_onto, release_cache};
use super::StorageFile;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

/// The alignment of direct writes: offsets, lengths and memory. 4 KiB covers
/// every logical block size in use (512 B on this VM's virtio disk).
const BLOCK: u64 = 4096;

/// Appends held beyond this many bytes are written out at once rather than
/// at the next sync, bounding the memory a slow fsync can pile up.
const MAX_HELD: usize = 16 << 20;

/// The largest buffer a file keeps for its next write-out.
const MAX_SPARE: usize = 1 << 20;

/// Opens `path` (already created or truncated by `plain`) for direct writes;
/// `None` where the file system refuses `O_DIRECT`.
pub fn open(path: &Path, plain: File) -> io::Result<Box<dyn StorageFile>> {
    let direct = OpenOptions::new()
        .write(true)
        .custom_flags(rustix::fs::OFlags::DIRECT.bits() as i32)
        .open(path);
    let direct = match direct {
        Ok(file) => Some(file),
        Err(e) if e.raw_os_error() == Some(rustix::io::Errno::INVAL.raw_os_error()) => None,
        Err(e) => return Err(e),
    };
    let len = plain.metadata()?.len();
    let file = DirectFile {
        file: plain,
        direct,
        refused: AtomicBool::new(false),
        state: Mutex::new(State {
            len,
            written: len,
            held: Held::empty(floor(len), 0),
            writing: None,
            spare: None,
            hold: true,
            failed: None,
        }),
        one_writer: Mutex::new(()),
    };
    {
        let mut state = lock(&file.state);
        let carry = file.read_file(floor(len), len)?;
        state.held.extend(&carry);
    }
    Ok(Box::new(file))
}

/// Whether `held` bytes fit in `free` with a margin (a block per 1 MiB for
/// the file system's own metadata); an unknown `free` is taken to fit.
fn fits(held: u64, free: Option<u64>) -> bool {
    free.is_none_or(|free| held + BLOCK + held / 256 <= free)
}

/// The bytes an unprivileged writer may still use on `file`'s file system.
fn free_bytes(file: &File) -> Option<u64> {
    let stat = rustix::fs::fstatvfs(file).ok()?;
    Some(stat.f_bavail.saturating_mul(stat.f_frsize))
}

fn floor(pos: u64) -> u64 {
    pos / BLOCK * BLOCK
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Zeros to fill a direct write's last block.
const ZEROS: [u8; BLOCK as usize] = [0; BLOCK as usize];

/// Bytes of the file from `start` (a block boundary) in block-aligned memory.
#[derive(Debug)]
struct Held {
    start: u64,
    /// `pad` bytes to reach an aligned address, then the data, then `zeros`
    /// bytes that fill its last block.
    buf: Vec<u8>,
    pad: usize,
    zeros: usize,
}

impl Held {
    /// An empty buffer for bytes from `start`, with room for `capacity`.
    fn empty(start: u64, capacity: usize) -> Held {
        let mut buf: Vec<u8> = Vec::with_capacity(capacity + BLOCK as usize);
        let pad = buf.as_ptr().align_offset(BLOCK as usize);
        buf.resize(pad, 0);
        Held {
            start,
            buf,
            pad,
            zeros: 0,
        }
    }

    /// Reuses this buffer's memory for bytes from `start`.
    fn reset(mut self, start: u64) -> Held {
        self.buf.truncate(self.pad);
        self.start = start;
        self.zeros = 0;
        self
    }

    fn data(&self) -> &[u8] {
        &self.buf[self.pad..self.buf.len() - self.zeros]
    }

    /// The data and the zeros after it: whole blocks once
    /// [`fill_block`](Self::fill_block) ran.
    fn blocks(&self) -> &[u8] {
        &self.buf[self.pad..]
    }

    /// Fills the last block up with zeros; no more data is added after.
    fn fill_block(&mut self) {
        let zeros = (BLOCK as usize - self.data().len() % BLOCK as usize) % BLOCK as usize;
        self.extend(&ZEROS[..zeros]);
        self.zeros = zeros;
    }

    fn end(&self) -> u64 {
        self.start + self.data().len() as u64
    }

    /// Appends `bytes`, moving to a larger aligned buffer if this one is
    /// full (a reallocation in place would lose the alignment).
    fn extend(&mut self, bytes: &[u8]) {
        debug_assert_eq!(self.zeros, 0, "data after the filled block");
        if self.buf.capacity() - self.buf.len() < bytes.len() {
            let want = (self.data().len() + bytes.len()).max(2 * self.data().len());
            let mut bigger = Held::empty(self.start, want);
            bigger.buf.extend_from_slice(self.data());
            *self = bigger;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// Copies the bytes of `pos..pos + out.len()` this buffer holds into
    /// the same place in `out`.
    fn copy_overlap(&self, pos: u64, out: &mut [u8]) {
        let from = pos.max(self.start);
        let to = (pos + out.len() as u64).min(self.end());
        if from < to {
            let src = &self.data()[(from - self.start) as usize..(to - self.start) as usize];
            out[(from - pos) as usize..(to - pos) as usize].copy_from_slice(src);
        }
    }
}

#[derive(Debug)]
struct State {
    /// The file's length, counting held bytes.
    len: u64,
    /// The file itself holds every byte below this.
    written: u64,
    /// Bytes from the block holding `written`'s end up to `len`, not yet
    /// written (but for the carried-over block).
    held: Held,
    /// Bytes being written out now, readable here until they are.
    writing: Option<Arc<Held>>,
    /// The buffer of the last write-out, for the next one.
    spare: Option<Held>,
    /// Whether appends wait for the next sync (else they go out at once).
    hold: bool,
    /// A write-out failed: what the file holds beyond `written` is unknown,
    /// and so is every later sync.
    failed: Option<String>,
}

impl State {
    /// Where bytes stop coming from the file: below this, the file has them.
    fn file_end(&self) -> u64 {
        self.writing
            .as_ref()
            .map_or(self.held.start, |w| w.start.min(self.held.start))
    }

    fn check(&self) -> io::Result<()> {
        match &self.failed {
            Some(why) => Err(io::Error::other(format!(
                "an earlier write of this file failed ({why}); reopen it"
            ))),
            None => Ok(()),
        }
    }
}

#[derive(Debug)]
struct DirectFile {
    /// Reads, the partial last block, truncation and fsync.
    file: File,
    /// The whole blocks; `None` where the file system refuses direct I/O.
    direct: Option<File>,
    /// The file system took `O_DIRECT` at open but refused a direct write.
    refused: AtomicBool,
    state: Mutex<State>,
    /// One write-out at a time (a sync on the blocking pool may meet a
    /// truncation or a sealing sync from the writer).
    one_writer: Mutex<()>,
}

impl DirectFile {
    /// The direct handle, unless the file system refused it.
    fn direct(&self) -> Option<&File> {
        self.direct
            .as_ref()
            .filter(|_| !self.refused.load(Ordering::Relaxed))
    }

    /// The file's bytes `from..to`, read through the page cache.
    fn read_file(&self, from: u64, to: u64) -> io::Result<Vec<u8>> {
        let mut buf = vec![0; (to - from) as usize];
        self.file.read_exact_at(&mut buf, from)?;
        Ok(buf)
    }

    /// Writes every held byte to the file (no fsync).
    fn write_out(&self) -> io::Result<()> {
        let _one = lock(&self.one_writer);
        let (out, end) = {
            let mut state = lock(&self.state);
            state.check()?;
            if state.len == state.written {
                return Ok(());
            }
            let end = state.len;
            // The next buffer starts with the block holding the end.
            let carry_from = floor(end);
            let mut next = match state.spare.take() {
                Some(spare) => spare.reset(carry_from),
                None => Held::empty(carry_from, state.held.data().len()),
            };
            let carried = (carry_from - state.held.start) as usize;
            next.extend(&state.held.data()[carried..]);
            let mut out = std::mem::replace(&mut state.held, next);
            out.fill_block();
            let out = Arc::new(out);
            state.writing = Some(out.clone());
            (out, end)
        };
        let result = self.write_held(&out);
        let mut state = lock(&self.state);
        state.writing = None;
        match result {
            Ok(()) => {
                state.written = end;
                // Kept for the next write-out unless large: a broker has a
                // file like this for every partition it holds.
                state.spare = Arc::try_unwrap(out)
                    .ok()
                    .filter(|held| held.buf.capacity() <= MAX_SPARE);
                Ok(())
            }
            Err(e) => {
                // Kept readable, with what was appended meanwhile, since the
                // log may still serve it; none of it will be made durable.
                let mut kept = Held::empty(out.start, (state.len - out.start) as usize);
                kept.extend(out.data());
                let since = (out.end() - state.held.start) as usize;
                kept.extend(&state.held.data()[since..]);
                state.held = kept;
                state.failed = Some(e.to_string());
                Err(e)
            }
        }
    }

    /// Writes `held`: in whole blocks (zeros after the data) directly, or
    /// just the data through the page cache where direct writes are refused.
    fn write_held(&self, held: &Held) -> io::Result<()> {
        if let Some(direct) = self.direct() {
            match direct.write_all_at(held.blocks(), held.start) {
                Ok(()) => return Ok(()),
                // Refused after all (some file systems take the flag at open
                // only): from now on through the page cache.
                Err(e) if e.raw_os_error() == Some(rustix::io::Errno::INVAL.raw_os_error()) => {
                    self.refused.store(true, Ordering::Relaxed);
                }
                Err(e) => return Err(e),
            }
        }
        self.file.write_all_at(held.data(), held.start)
    }

    /// Cuts the zeros a direct write left past the file's length.
    fn cut_to_len(&self) -> io::Result<()> {
        let _one = lock(&self.one_writer);
        let len = lock(&self.state).len;
        if self.file.metadata()?.len() > len {
            self.file.set_len(len)?;
        }
        Ok(())
    }

    /// After a write that did not append: the file has everything; the held
    /// buffer starts over from the block holding the end.
    fn reload(&self, len: u64) -> io::Result<()> {
        let carry = self.read_file(floor(len), len)?;
        let mut state = lock(&self.state);
        state.len = len;
        state.written = len;
        let mut held = Held::empty(floor(len), carry.len());
        held.extend(&carry);
        state.held = held;
        Ok(())
    }

    /// Reads `pos..pos + len` onto the end of `out`: what the file has
    /// through the page cache, the rest from the held buffers.
    fn read_onto(&self, out: &mut Vec<u8>, len: usize, pos: u64) -> io::Result<()> {
        let end = pos + len as u64;
        let start_len = out.len();
        loop {
            let at = pos + (out.len() - start_len) as u64;
            if at == end {
                return Ok(());
            }
            let file_end = {
                let state = lock(&self.state);
                if end > state.len {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!("the file ends before byte {end}"),
                    ));
                }
                let file_end = state.file_end();
                if at >= file_end {
                    let from = out.len();
                    out.resize(from + (end - at) as usize, 0);
                    let into = &mut out[from..];
                    if let Some(writing) = &state.writing {
                        writing.copy_overlap(at, into);
                    }
                    state.held.copy_overlap(at, into);
                    return Ok(());
                }
                file_end
            };
            // Below `file_end` the file's bytes no longer change; held bytes
            // may go out meanwhile, so the loop looks again.
            read_file_onto(&self.file, out, (end.min(file_end) - at) as usize, at)?;
        }
    }
}

impl StorageFile for DirectFile {
    fn len(&self) -> io::Result<u64> {
        Ok(lock(&self.state).len)
    }

    fn read_exact_at(&self, buf: &mut [u8], pos: u64) -> io::Result<()> {
        let mut out = Vec::with_capacity(buf.len());
        self.read_onto(&mut out, buf.len(), pos)?;
        buf.copy_from_slice(&out);
        Ok(())
    }

    fn read_vec_at(&self, len: usize, pos: u64) -> io::Result<Vec<u8>> {
        let mut out = Vec::with_capacity(len);
        self.read_onto(&mut out, len, pos)?;
        Ok(out)
    }

    fn write_all_at(&self, buf: &[u8], pos: u64) -> io::Result<()> {
        let write_now = {
            let mut state = lock(&self.state);
            state.check()?;
            if pos == state.len {
                let held = state.len - state.written + buf.len() as u64;
                if state.hold && !fits(held, free_bytes(&self.file)) {
                    // A full disk refuses the append itself, as a write
                    // through the page cache would, not the fsync after it
                    // (which fails the log).
                    return Err(io::Error::from(io::ErrorKind::StorageFull));
                }
                state.held.extend(buf);
                state.len += buf.len() as u64;
                Some(!state.hold || state.len - state.written > MAX_HELD as u64)
            } else {
                None
            }
        };
        match write_now {
            Some(true) => self.write_out(),
            Some(false) => Ok(()),
            // Not an append (the log does not do this): everything out
            // first, then this write through the page cache.
            None => {
                self.write_out()?;
                let _one = lock(&self.one_writer);
                self.file.write_all_at(buf, pos)?;
                let len = lock(&self.state).len.max(pos + buf.len() as u64);
                self.reload(len)
            }
        }
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.write_out()?;
        let _one = lock(&self.one_writer);
        self.file.set_len(len)?;
        self.reload(len)
    }

    fn sync_data(&self) -> io::Result<()> {
        self.write_out()?;
        self.file.sync_data()
    }

    fn release_cache(&self, pos: u64, len: u64) -> io::Result<()> {
        // Only a file the file system would not write directly has its
        // bytes in the page cache.
        match self.direct() {
            Some(_) => Ok(()),
            None => release_cache(&self.file, pos, len),
        }
    }

    fn finish_appends(&self) -> io::Result<()> {
        self.write_out()?;
        self.cut_to_len()?;
        self.file.sync_data()
    }

    fn hold_appends(&self, hold: bool) -> io::Result<()> {
        lock(&self.state).hold = hold;
        if hold {
            Ok(())
        } else {
            self.write_out()
        }
    }
}

impl Drop for DirectFile {
    /// Held bytes go to the file (not synced), as a buffered file's writes
    /// would stay in the page cache.
    fn drop(&mut self) {
        if self.write_out().is_ok() {
            let _ = self.cut_to_len();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::{FsStorage, OpenMode, Storage};
    use proptest::prelude::*;
    use std::sync::atomic::AtomicU64;

    /// The byte every test writes at `pos`, so a byte from the wrong place shows.
    fn byte_at(pos: u64) -> u8 {
        (pos.wrapping_mul(31) ^ (pos >> 9)) as u8
    }

    fn bytes(from: u64, len: usize) -> Vec<u8> {
        (from..from + len as u64).map(byte_at).collect()
    }

    fn open(path: &Path, mode: OpenMode) -> Box<dyn StorageFile> {
        FsStorage.open_log(path, mode).unwrap()
    }

    /// The file on disk holds `model`, then at most zeros to the end of its
    /// block (a direct write's fill).
    fn on_disk(path: &Path, model: &[u8]) -> Result<(), TestCaseError> {
        let disk = std::fs::read(path).unwrap();
        prop_assert!(
            disk.len() >= model.len(),
            "{} < {}",
            disk.len(),
            model.len()
        );
        prop_assert_eq!(&disk[..model.len()], model);
        prop_assert!(disk.len() as u64 <= model.len().div_ceil(BLOCK as usize) as u64 * BLOCK);
        prop_assert!(disk[model.len()..].iter().all(|&b| b == 0));
        Ok(())
    }

    #[derive(Clone, Debug)]
    enum Op {
        Append(usize),
        Sync,
        /// Cut to this share (in thousandths) of the length.
        Cut(u64),
        /// Read from this share of the length, this many bytes at most.
        Read(u64, usize),
        Reopen,
        Hold(bool),
        Finish,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (0usize..20_000).prop_map(Op::Append),
            2 => Just(Op::Sync),
            1 => (0u64..=1000).prop_map(Op::Cut),
            3 => ((0u64..=1000), (0usize..30_000)).prop_map(|(a, b)| Op::Read(a, b)),
            1 => Just(Op::Reopen),
            1 => any::<bool>().prop_map(Op::Hold),
            1 => Just(Op::Finish),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

        /// Against a model: every read sees exactly what was written, at
        /// once; after a sync or a write-through append the file on disk
        /// holds the model's bytes (and zeros to the end of their block),
        /// after a cut, `finish_appends` or a drop exactly the model's bytes.
        #[test]
        fn a_direct_file_reads_and_keeps_what_a_plain_one_would(ops in prop::collection::vec(op(), 1..40)) {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("0.log");
            let mut file = open(&path, OpenMode::Truncate);
            let mut model: Vec<u8> = Vec::new();
            let mut hold = true;
            for op in ops {
                match op {
                    Op::Append(n) => {
                        let at = model.len() as u64;
                        let data = bytes(at, n);
                        file.write_all_at(&data, at).unwrap();
                        model.extend_from_slice(&data);
                        if !hold {
                            on_disk(&path, &model)?;
                        }
                    }
                    Op::Sync => {
                        file.sync_data().unwrap();
                        on_disk(&path, &model)?;
                    }
                    Op::Finish => {
                        file.finish_appends().unwrap();
                        prop_assert_eq!(&std::fs::read(&path).unwrap(), &model, "cut to its length");
                    }
                    Op::Cut(share) => {
                        let len = model.len() as u64 * share / 1000;
                        file.set_len(len).unwrap();
                        model.truncate(len as usize);
                        prop_assert_eq!(&std::fs::read(&path).unwrap(), &model);
                    }
                    Op::Read(share, n) => {
                        let from = model.len() as u64 * share / 1000;
                        let n = n.min(model.len() - from as usize);
                        let want = &model[from as usize..from as usize + n];
                        prop_assert_eq!(&file.read_vec_at(n, from).unwrap(), want);
                        let mut buf = vec![0; n];
                        file.read_exact_at(&mut buf, from).unwrap();
                        prop_assert_eq!(&buf, want);
                        // One byte past the end is an error, not a zero.
                        let past = model.len() - from as usize + 1;
                        prop_assert!(file.read_vec_at(past, from).is_err());
                    }
                    Op::Reopen => {
                        drop(file);
                        prop_assert_eq!(&std::fs::read(&path).unwrap(), &model, "written on drop");
                        file = open(&path, OpenMode::Existing);
                        hold = true;
                    }
                    Op::Hold(on) => {
                        file.hold_appends(on).unwrap();
                        hold = on;
                        if !on {
                            on_disk(&path, &model)?;
                        }
                    }
                }
                prop_assert_eq!(file.len().unwrap(), model.len() as u64);
            }
        }
    }

    #[test]
    fn an_append_that_would_not_fit_on_the_disk_is_refused() {
        assert!(fits(1 << 20, None));
        assert!(fits(1 << 20, Some(2 << 20)));
        assert!(!fits(1 << 20, Some(1 << 20)), "no room for the margin");
        assert!(!fits(10 << 20, Some(1 << 20)));
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.log");
        drop(open(&path, OpenMode::Truncate));
        let free = free_bytes(&File::open(&path).unwrap());
        assert!(
            free.is_some_and(|n| n > 0),
            "a real file system tells its free space"
        );
    }

    #[test]
    fn held_appends_reach_the_file_at_the_sync() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.log");
        let file = open(&path, OpenMode::Truncate);
        file.write_all_at(&bytes(0, 10_000), 0).unwrap();
        file.sync_data().unwrap();
        assert_eq!(
            std::fs::metadata(&path).unwrap().len(),
            12_288,
            "whole blocks"
        );
        file.write_all_at(&bytes(10_000, 5_000), 10_000).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 12_288, "held");
        assert_eq!(file.len().unwrap(), 15_000);
        assert_eq!(file.read_vec_at(6_000, 9_000).unwrap(), bytes(9_000, 6_000));
        file.sync_data().unwrap();
        let disk = std::fs::read(&path).unwrap();
        assert_eq!(disk.len(), 16_384);
        assert_eq!(&disk[..15_000], bytes(0, 15_000));
        file.finish_appends().unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), bytes(0, 15_000));
    }

    #[test]
    fn more_than_the_bound_held_goes_out_without_a_sync() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.log");
        let file = open(&path, OpenMode::Truncate);
        let chunk = 1 << 20;
        let mut len = 0;
        while len <= MAX_HELD {
            file.write_all_at(&bytes(len as u64, chunk), len as u64)
                .unwrap();
            len += chunk;
        }
        // Whole mebibytes: the direct writes left no fill.
        assert_eq!(std::fs::read(&path).unwrap(), bytes(0, len));
    }

    /// Readers on other threads, while appends and syncs go on, always read
    /// the bytes written, whether they come from the file, the buffer being
    /// written out or the held one.
    #[test]
    fn reads_during_appends_and_syncs_see_the_written_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.log");
        let file: Arc<dyn StorageFile> = Arc::from(open(&path, OpenMode::Truncate));
        let published = Arc::new(AtomicU64::new(0));
        let total: u64 = 24 << 20;
        let readers: Vec<_> = (0..2u64)
            .map(|seed| {
                let (file, published) = (file.clone(), published.clone());
                std::thread::spawn(move || {
                    let mut reads = 0u64;
                    let mut x = seed + 1;
                    loop {
                        let len = published.load(Ordering::Acquire);
                        if len >= total {
                            return reads;
                        }
                        // A range ending at or near the end, where the held bytes are.
                        x = x
                            .wrapping_mul(6364136223846793005)
                            .wrapping_add(1442695040888963407);
                        let back = (x >> 33) % 300_000;
                        let from = len.saturating_sub(back);
                        let n = ((x >> 13) % 200_000).min(len - from) as usize;
                        assert_eq!(
                            file.read_vec_at(n, from).unwrap(),
                            bytes(from, n),
                            "at {from}"
                        );
                        reads += 1;
                    }
                })
            })
            .collect();
        let syncer = {
            let (file, published) = (file.clone(), published.clone());
            std::thread::spawn(move || {
                while published.load(Ordering::Acquire) < total {
                    file.sync_data().unwrap();
                }
            })
        };
        let mut len = 0u64;
        let mut n = 1;
        while len < total {
            n = n * 7 % 250_007;
            let data = bytes(len, n);
            file.write_all_at(&data, len).unwrap();
            len += n as u64;
            published.store(len, Ordering::Release);
        }
        syncer.join().unwrap();
        for reader in readers {
            assert!(reader.join().unwrap() > 0);
        }
        file.finish_appends().unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), bytes(0, len as usize));
    }
}
