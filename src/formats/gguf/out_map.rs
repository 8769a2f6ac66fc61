//! The output file mapped into memory, so tiles are encoded straight into the page cache by
//! every worker thread instead of being copied in by one writer thread.
//!
//! Why: filling fresh page-cache pages costs far more than the copy itself on some machines
//! (this project's 2-core VM: 0.3-0.4 GB/s through `pwrite`, whatever the thread count, since
//! a file's buffered writes are serialized by its inode lock), while page faults on a shared
//! mapping proceed on every core at once (544 MiB: 1.4-2.0 s through `pwrite` from one or two
//! threads, 0.25-0.45 s through a mapping filled by two threads). The writer thread of a
//! quantize run was the critical path for the cheap codecs (Q8_0, Q4_0).
//!
//! Safety of the scheme: the whole file's space is reserved first (`fallocate`), so a page
//! fault never meets a full file system (that would be SIGBUS, not an error); where space
//! cannot be reserved (no `fallocate` on the file system, not Linux) the writer falls back to
//! `pwrite`. A region is handed out only after the writer recorded its byte range as written,
//! and ranges never overlap, so no two `&mut` slices alias. Released regions lose their page
//! table entries (resident memory stays bounded: a shared file mapping keeps the bytes in the
//! page cache) and their writeback starts one region later, so the final flush waits for less.

use super::GgufError;
use std::fs::File;
use std::path::Path;

/// The file's bytes `0..len`, mapped shared and writable.
#[derive(Debug)]
pub struct OutMap {
    map: memmap2::MmapRaw,
    writeback: std::sync::Mutex<Writeback>,
    /// For `sync_file_range` on release.
    #[cfg(target_os = "linux")]
    fd: std::os::unix::io::RawFd,
}

impl OutMap {
    /// Reserves `len` bytes of disk for `file` (already `len` long) and maps it. `Ok(None)` when
    /// this system cannot reserve space or map the file (the caller writes instead); an error
    /// when the file system has no room (ENOSPC, EDQUOT, EFBIG): the run cannot succeed.
    #[cfg(target_os = "linux")]
    pub fn create(file: &File, tmp: &Path, len: u64) -> Result<Option<OutMap>, GgufError> {
        use std::os::unix::io::AsRawFd;
        let (Ok(n), Ok(off_len)) = (usize::try_from(len), libc::off_t::try_from(len)) else {
            return Ok(None);
        };
        if n == 0 {
            return Ok(None);
        }
        let fd = file.as_raw_fd();
        // SAFETY: fallocate on a descriptor `file` owns; mode 0 keeps the written header.
        if unsafe { libc::fallocate(fd, 0, 0, off_len) } != 0 {
            let e = std::io::Error::last_os_error();
            return match e.raw_os_error() {
                Some(libc::ENOSPC | libc::EDQUOT | libc::EFBIG) => Err(
                    super::output::write_failed(tmp, "reserving space for", 0, len, e),
                ),
                // EOPNOTSUPP, ENOSYS, EINVAL, ...: write through pwrite instead
                _ => Ok(None),
            };
        }
        Ok(memmap2::MmapOptions::new()
            .len(n)
            .map_raw(file)
            .ok()
            .map(|map| OutMap {
                map,
                writeback: Default::default(),
                fd,
            }))
    }

    /// Not Linux: no space reservation here, so never mapped.
    #[cfg(not(target_os = "linux"))]
    pub fn create(_file: &File, _tmp: &Path, _len: u64) -> Result<Option<OutMap>, GgufError> {
        Ok(None)
    }

    /// The mapped bytes `at..at + len`.
    ///
    /// # Safety
    /// The range must lie inside the mapping and no other live slice may overlap it (the
    /// writer's range book keeps both true).
    #[allow(clippy::mut_from_ref)] // the writer's range book is what makes it unique
    pub unsafe fn slice_mut(&self, at: u64, len: usize) -> &mut [u8] {
        // SAFETY: in bounds and unaliased by the caller's contract; the mapping lives as long
        // as `self`.
        unsafe { std::slice::from_raw_parts_mut(self.map.as_mut_ptr().add(at as usize), len) }
    }

    /// Drops this process's page table entries of `at..at + len` (the bytes stay in the page
    /// cache) and starts writing back what lies well behind it. Best effort: both are hints.
    ///
    /// Writeback locks each page-cache folio while it is submitted, and a folio (up to a PMD,
    /// aligned to its size) can reach past the region just filled into the next one, which
    /// the worker threads are filling meanwhile: they then wait in the page fault for the lock
    /// (seen: encoders sleeping in `ext4_page_mkwrite -> __folio_lock`). So writeback runs one
    /// release behind, up to the previous region's end rounded down to [`FOLIO_MAX`]: no folio there
    /// can hold bytes of a region still being filled, as long as regions come in file order
    /// (the pipeline's). Bytes never started here are written by the final flush.
    pub fn release(&self, at: u64, len: u64) {
        if len == 0 {
            return;
        }
        // SAFETY: DONTNEED on a shared file mapping keeps its contents (a later access reads
        // the page cache again), so a slice still being filled over a shared edge page is not
        // disturbed.
        let _ = unsafe {
            self.map.unchecked_advise_range(
                memmap2::UncheckedAdvice::DontNeed,
                at as usize,
                len as usize,
            )
        };
        let (from, to) = {
            let mut wb = self.writeback.lock().unwrap_or_else(|e| e.into_inner());
            let to = wb.previous_end & !(FOLIO_MAX - 1);
            wb.previous_end = at + len;
            let from = wb.started;
            if to <= from {
                return;
            }
            wb.started = to;
            (from, to)
        };
        #[cfg(target_os = "linux")]
        // SAFETY: a hint on a descriptor the writer owns; no memory is touched.
        unsafe {
            libc::sync_file_range(
                self.fd,
                from as libc::off64_t,
                (to - from) as libc::off64_t,
                libc::SYNC_FILE_RANGE_WRITE,
            );
        }
        #[cfg(not(target_os = "linux"))]
        let _ = (from, to);
    }
}

/// At least the largest page-cache folio writeback locks at once: a PMD, 2 MiB with 4 KiB
/// pages (x86-64), 32 MiB with 16 KiB pages (arm64 kernels on Apple hardware); see
/// [`OutMap::release`].
const FOLIO_MAX: u64 = 32 << 20;

/// Where early writeback stands.
#[derive(Debug, Default)]
struct Writeback {
    /// Writeback was started for `..started`.
    started: u64,
    /// The end of the region released last.
    previous_end: u64,
}

/// `dst.copy_from_slice(src)` on every rayon thread for large copies (a mapped destination
/// faults its pages in on every core).
pub fn copy_parallel(dst: &mut [u8], src: &[u8]) {
    use rayon::prelude::*;
    const CHUNK: usize = 1 << 20;
    if src.len() < 4 * CHUNK {
        dst.copy_from_slice(src);
        return;
    }
    dst.par_chunks_mut(CHUNK)
        .zip(src.par_chunks(CHUNK))
        .for_each(|(d, s)| d.copy_from_slice(s));
}
