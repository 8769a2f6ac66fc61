//! Read-only memory maps of input files that survive the file changing under them.
//!
//! A mapped file that shrinks (a download still being written, a file replaced on a network
//! share) makes every read past its new end raise SIGBUS, which kills the process. Each
//! [`GuardedMap`] registers its address range in a fixed table; a SIGBUS handler
//! (`sigaction` with `SA_SIGINFO`) that finds the fault address inside a registered range maps
//! an anonymous zero page over the faulting page (`mmap(MAP_FIXED)`) and sets the map's fault
//! flag, so the read completes with zeros; the source then turns the flag into an error naming
//! the file ([`GuardedMap::check_unchanged`], called before each tensor and at the end of a
//! run). A fault anywhere else goes to the handler that was installed before (Rust's stack
//! overflow handler, or the default action).
//!
//! [`GuardedMap::check_unchanged`] also compares the file's size and modification time
//! (`fstat` of the open descriptor) with those seen when it was opened.

use memmap2::Mmap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Once;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// How many maps can be guarded at once; more are still mapped, unguarded.
const SLOTS: usize = 256;

struct Slot {
    /// 0 when free; set last when a map is registered, cleared first when it goes.
    start: AtomicUsize,
    len: AtomicUsize,
    faulted: AtomicBool,
    taken: AtomicBool,
}

#[allow(clippy::declare_interior_mutable_const)]
const FREE: Slot = Slot {
    start: AtomicUsize::new(0),
    len: AtomicUsize::new(0),
    faulted: AtomicBool::new(false),
    taken: AtomicBool::new(false),
};
static TABLE: [Slot; SLOTS] = [FREE; SLOTS];
static PAGE: AtomicUsize = AtomicUsize::new(4096);
static INSTALL: Once = Once::new();
/// The SIGBUS action before ours (a `libc::sigaction` stored as bytes behind a pointer).
static PREVIOUS: AtomicUsize = AtomicUsize::new(0);

fn install_handler() {
    INSTALL.call_once(|| {
        // SAFETY: sysconf and sigaction are called with valid arguments; the old action is
        // leaked into a static that the handler only reads.
        unsafe {
            let ps = libc::sysconf(libc::_SC_PAGESIZE);
            if ps > 0 {
                PAGE.store(ps as usize, Ordering::Relaxed);
            }
            let old: *mut libc::sigaction = Box::into_raw(Box::new(std::mem::zeroed()));
            let mut act: libc::sigaction = std::mem::zeroed();
            act.sa_sigaction = on_sigbus as *const () as usize;
            act.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK | libc::SA_NODEFER;
            libc::sigemptyset(&mut act.sa_mask);
            if libc::sigaction(libc::SIGBUS, &act, old) == 0 {
                PREVIOUS.store(old as usize, Ordering::Release);
            }
        }
    });
}

/// The SIGBUS handler. Only async-signal-safe work: atomics, mmap, sigaction.
extern "C" fn on_sigbus(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid siginfo for SA_SIGINFO handlers.
    let addr = unsafe { (*info).si_addr() } as usize;
    let page = PAGE.load(Ordering::Relaxed);
    for s in &TABLE {
        let start = s.start.load(Ordering::Acquire);
        if start == 0 {
            continue;
        }
        let len = s.len.load(Ordering::Acquire);
        if addr >= start && addr - start < len {
            let p = addr & !(page - 1);
            // SAFETY: the page lies inside a read-only file mapping this process made and
            // still holds (the slot is cleared before it is unmapped); replacing it with a
            // private zero page changes only what later reads of that page see.
            let r = unsafe {
                libc::mmap(
                    p as *mut libc::c_void,
                    page,
                    libc::PROT_READ,
                    libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED,
                    -1,
                    0,
                )
            };
            if r != libc::MAP_FAILED {
                s.faulted.store(true, Ordering::Release);
                return;
            }
            break;
        }
    }
    // not ours: the previous handler, or the default action when the instruction reruns
    let prev = PREVIOUS.load(Ordering::Acquire) as *const libc::sigaction;
    // SAFETY: PREVIOUS is null or points at the leaked action saved at install.
    unsafe {
        if !prev.is_null() {
            let h = (*prev).sa_sigaction;
            if h != libc::SIG_DFL && h != libc::SIG_IGN {
                if (*prev).sa_flags & libc::SA_SIGINFO != 0 {
                    let f: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) =
                        std::mem::transmute(h);
                    f(sig, info, ctx);
                } else {
                    let f: extern "C" fn(libc::c_int) = std::mem::transmute(h);
                    f(sig);
                }
                return;
            }
        }
        let mut dfl: libc::sigaction = std::mem::zeroed();
        dfl.sa_sigaction = libc::SIG_DFL;
        libc::sigaction(libc::SIGBUS, &dfl, std::ptr::null_mut());
    }
}

fn register(start: usize, len: usize) -> Option<usize> {
    install_handler();
    for (i, s) in TABLE.iter().enumerate() {
        if s.taken
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
        {
            s.faulted.store(false, Ordering::Release);
            s.len.store(len, Ordering::Release);
            s.start.store(start, Ordering::Release);
            return Some(i);
        }
    }
    None
}

fn unregister(i: usize) {
    let s = &TABLE[i];
    s.start.store(0, Ordering::Release);
    s.len.store(0, Ordering::Release);
    s.taken.store(false, Ordering::Release);
}

/// What a file looked like when it was opened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Stamp {
    len: u64,
    mtime: (i64, i64),
}

fn stamp(f: &File) -> std::io::Result<Stamp> {
    use std::os::unix::fs::MetadataExt;
    let m = f.metadata()?;
    Ok(Stamp {
        len: m.len(),
        mtime: (m.mtime(), m.mtime_nsec()),
    })
}

/// A read-only map of a whole file, guarded against the file shrinking under it.
#[derive(Debug)]
pub struct GuardedMap {
    map: Mmap,
    file: File,
    path: PathBuf,
    opened: Stamp,
    slot: Option<usize>,
}

/// The file changed after it was opened, or a read of it faulted.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {what} while gpuq was reading it; stopped, no output written")]
pub struct ChangedError {
    pub path: PathBuf,
    pub what: String,
}

impl GuardedMap {
    /// Maps `file` (opened from `path`; not empty).
    pub fn map(file: File, path: &Path) -> std::io::Result<GuardedMap> {
        let opened = stamp(&file)?;
        // SAFETY: a read-only map of a file gpuq does not write. A file changed by another
        // process while mapped is guarded as the module says: reads past a shrunk end see
        // zeros and set the fault flag instead of killing the process.
        let map = unsafe { Mmap::map(&file) }?;
        let slot = register(map.as_ptr() as usize, map.len());
        Ok(GuardedMap {
            map,
            file,
            path: path.to_path_buf(),
            opened,
            slot,
        })
    }

    pub fn bytes(&self) -> &[u8] {
        &self.map
    }

    /// The underlying map (for page-cache advice).
    pub fn mmap(&self) -> &Mmap {
        &self.map
    }

    /// True once a read of this map faulted (the file shrank).
    pub fn faulted(&self) -> bool {
        self.slot
            .is_some_and(|i| TABLE[i].faulted.load(Ordering::Acquire))
    }

    /// Errs when a read faulted or the file's size or modification time changed since it
    /// was opened.
    pub fn check_unchanged(&self) -> Result<(), ChangedError> {
        let err = |what: String| ChangedError {
            path: self.path.clone(),
            what,
        };
        if self.faulted() {
            return Err(err(format!(
                "a read past the end of the file faulted: it is shorter than the {} bytes it had when opened",
                self.opened.len
            )));
        }
        let now = stamp(&self.file).map_err(|e| err(format!("cannot stat it: {e}")))?;
        if now.len != self.opened.len {
            return Err(err(format!(
                "its size changed from {} to {} bytes",
                self.opened.len, now.len
            )));
        }
        if now.mtime != self.opened.mtime {
            return Err(err("it was modified (its modification time changed)".into()));
        }
        Ok(())
    }
}

impl Drop for GuardedMap {
    fn drop(&mut self) {
        if let Some(i) = self.slot {
            unregister(i);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn a_shrunk_file_reads_zeros_and_reports() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f.bin");
        let page = 4096 * 4;
        std::fs::File::create(&p)
            .unwrap()
            .write_all(&vec![7u8; page * 4])
            .unwrap();
        let m = GuardedMap::map(File::open(&p).unwrap(), &p).unwrap();
        m.check_unchanged().unwrap();
        assert_eq!(m.bytes()[page * 3], 7);
        std::fs::OpenOptions::new()
            .write(true)
            .open(&p)
            .unwrap()
            .set_len(page as u64)
            .unwrap();
        // past the new end: zeros, not a signal
        let tail: u64 = m.bytes()[page * 2..].iter().map(|&b| u64::from(b)).sum();
        assert_eq!(tail, 0);
        assert!(m.faulted());
        let e = m.check_unchanged().unwrap_err().to_string();
        assert!(e.contains("f.bin") && e.contains("faulted"), "{e}");
    }

    #[test]
    fn a_grown_file_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("g.bin");
        std::fs::write(&p, [1u8; 100]).unwrap();
        let m = GuardedMap::map(File::open(&p).unwrap(), &p).unwrap();
        std::fs::OpenOptions::new()
            .append(true)
            .open(&p)
            .unwrap()
            .write_all(&[2u8; 10])
            .unwrap();
        let e = m.check_unchanged().unwrap_err().to_string();
        assert!(e.contains("from 100 to 110"), "{e}");
        assert!(!m.faulted());
    }
}
