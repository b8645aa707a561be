//! Real files, through `std::fs` and positional reads and writes.

use super::{OpenMode, Storage, StorageFile};
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::{Mutex, PoisonError};

/// How much of a dead file [`FsStorage::remove_dead_file`] frees at a time.
/// Under a 3-node load on this project's VM (ext4 mounted with `discard`),
/// a step of 1 MiB held other fsyncs up by at most 5 ms; 4 MiB by 20 ms.
const REMOVAL_STEP: u64 = 1 << 20;

/// Held for each cut of [`FsStorage::remove_dead_file`].
static CUTTING: Mutex<()> = Mutex::new(());

/// The lengths a dead file of `len` bytes is cut to before it is unlinked:
/// a step less each time, while more than a step is left.
fn removal_cuts(len: u64) -> impl Iterator<Item = u64> {
    let steps = len.saturating_sub(1) / REMOVAL_STEP;
    (1..=steps).map(move |i| len - i * REMOVAL_STEP)
}

/// Storage on the machine's file system. Paths are used as given.
#[derive(Clone, Copy, Debug, Default)]
pub struct FsStorage;

impl Storage for FsStorage {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        // Every level created here needs its entry in its parent made durable.
        let missing: Vec<&Path> = dir
            .ancestors()
            .take_while(|d| !d.as_os_str().is_empty() && !d.exists())
            .collect();
        std::fs::create_dir_all(dir)?;
        for created in missing.iter().rev() {
            match created.parent() {
                Some(parent) if !parent.as_os_str().is_empty() => self.sync_dir(parent)?,
                _ => {}
            }
        }
        Ok(())
    }

    fn list_dir(&self, dir: &Path) -> io::Result<Vec<String>> {
        entries(dir, std::fs::FileType::is_file)
    }

    fn list_subdirs(&self, dir: &Path) -> io::Result<Vec<String>> {
        entries(dir, std::fs::FileType::is_dir)
    }

    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Box<dyn StorageFile>> {
        Ok(Box::new(FsFile(open_file(path, mode)?)))
    }

    fn open_log(&self, path: &Path, mode: OpenMode) -> io::Result<Box<dyn StorageFile>> {
        super::direct::open(path, open_file(path, mode)?)
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_file(path)
    }

    fn remove_dead_file(&self, path: &Path) -> io::Result<()> {
        let file = open_file(path, OpenMode::Existing)?;
        for len in removal_cuts(file.metadata()?.len()) {
            // One cut at a time in the process, whatever the number of
            // files being removed: each commit then frees one step.
            let _one = CUTTING.lock().unwrap_or_else(PoisonError::into_inner);
            file.set_len(len)?;
            file.sync_data()?;
        }
        drop(file);
        std::fs::remove_file(path)
    }

    fn remove_dir(&self, dir: &Path) -> io::Result<()> {
        std::fs::remove_dir(dir)
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        std::fs::rename(from, to)
    }

    fn rename_dir(&self, from: &Path, to: &Path) -> io::Result<()> {
        if to.exists() {
            return Err(io::Error::from(io::ErrorKind::AlreadyExists));
        }
        std::fs::rename(from, to)
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        File::open(dir)?.sync_all()
    }

    fn exists(&self, path: &Path) -> bool {
        path.exists()
    }

    fn syncs_block(&self) -> bool {
        true
    }
}

fn open_file(path: &Path, mode: OpenMode) -> io::Result<File> {
    let mut options = OpenOptions::new();
    options.read(true).write(true);
    match mode {
        OpenMode::Existing => {}
        OpenMode::CreateNew => {
            options.create_new(true);
        }
        OpenMode::Truncate => {
            options.create(true).truncate(true);
        }
    }
    options.open(path)
}

#[derive(Debug)]
struct FsFile(File);

impl StorageFile for FsFile {
    fn len(&self) -> io::Result<u64> {
        Ok(self.0.metadata()?.len())
    }

    fn read_exact_at(&self, buf: &mut [u8], pos: u64) -> io::Result<()> {
        self.0.read_exact_at(buf, pos)
    }

    fn read_vec_at(&self, len: usize, pos: u64) -> io::Result<Vec<u8>> {
        let mut buf = Vec::new();
        read_file_onto(&self.0, &mut buf, len, pos)?;
        Ok(buf)
    }

    fn write_all_at(&self, buf: &[u8], pos: u64) -> io::Result<()> {
        self.0.write_all_at(buf, pos)
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.0.set_len(len)
    }

    fn sync_data(&self) -> io::Result<()> {
        self.0.sync_data()
    }

    fn release_cache(&self, pos: u64, len: u64) -> io::Result<()> {
        release_cache(&self.0, pos, len)
    }
}

/// Appends the file's `len` bytes from `pos` to `out`, reading into its
/// spare capacity: no zeroing first (that cost 3% of a broker's CPU on the
/// fetch path).
pub(super) fn read_file_onto(
    file: &File,
    out: &mut Vec<u8>,
    len: usize,
    pos: u64,
) -> io::Result<()> {
    let start = out.len();
    let target = start + len;
    out.reserve(len);
    while out.len() < target {
        let at = pos + (out.len() - start) as u64;
        // rustix marks the spare capacity initialized as far as the read went.
        match rustix::io::pread(file, rustix::buffer::spare_capacity(&mut *out), at) {
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("the file ends before byte {}", pos + len as u64),
                ))
            }
            Ok(_) => {}
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
    // The capacity may exceed what was asked for.
    out.truncate(target);
    Ok(())
}

/// Advises the kernel that `file`'s bytes `pos..pos + len` will not be read soon.
pub(super) fn release_cache(file: &File, pos: u64, len: u64) -> io::Result<()> {
    let Some(len) = std::num::NonZeroU64::new(len) else {
        return Ok(());
    };
    rustix::fs::fadvise(file, pos, Some(len), rustix::fs::Advice::DontNeed).map_err(io::Error::from)
}

/// The sorted names of the entries in `dir` whose type passes `want`.
fn entries(dir: &Path, want: fn(&std::fs::FileType) -> bool) -> io::Result<Vec<String>> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if want(&entry.file_type()?) {
            names.push(entry.file_name().to_string_lossy().into_owned());
        }
    }
    names.sort();
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dead_file_is_cut_a_step_at_a_time_down_to_at_most_a_step() {
        const MIB: u64 = 1 << 20;
        assert_eq!(removal_cuts(0).count(), 0);
        assert_eq!(removal_cuts(MIB).count(), 0, "one step is unlinked whole");
        assert_eq!(removal_cuts(MIB + 1).collect::<Vec<_>>(), [1]);
        let cuts: Vec<u64> = removal_cuts(3 * MIB + MIB / 2).collect();
        assert_eq!(cuts, [2 * MIB + MIB / 2, MIB + MIB / 2, MIB / 2]);
        let len = 256 * MIB + 7;
        let mut last = len;
        for cut in removal_cuts(len) {
            assert_eq!(last - cut, REMOVAL_STEP);
            last = cut;
        }
        assert!(last > 0 && last <= REMOVAL_STEP, "{last}");
    }

    #[test]
    fn dead_files_large_and_small_are_removed_and_a_missing_one_is_not_found() {
        let tmp = tempfile::tempdir().unwrap();
        let big = tmp.path().join("00000000000000000000.log.deleted");
        let small = tmp.path().join("00000000000000000000.index.deleted");
        std::fs::write(&big, vec![7u8; (3 * REMOVAL_STEP + 5) as usize]).unwrap();
        std::fs::write(&small, b"index").unwrap();
        FsStorage.remove_dead_file(&big).unwrap();
        FsStorage.remove_dead_file(&small).unwrap();
        assert!(!big.exists() && !small.exists());
        let missing = FsStorage.remove_dead_file(&big).unwrap_err();
        assert_eq!(missing.kind(), io::ErrorKind::NotFound);
    }
}
