//! Where an output file is written: the free-space check before the first byte, a temporary
//! name unique to this run (`NAME.tmp.<pid>`, created exclusively and held under an `flock`
//! so another run can tell it is live), and write errors that name the path, the OS error and
//! the sizes.

use super::GgufError;
use std::fs::{File, OpenOptions};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

/// The directory an output path lives in (`.` for a bare file name).
fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Bytes available to this user on the file system holding `dir` (`statvfs`: `f_bavail *
/// f_frsize`); `None` when it cannot be asked.
pub fn free_bytes(dir: &Path) -> Option<u64> {
    let c = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    // SAFETY: statvfs writes only into the struct it is given; `c` is a valid C string.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::statvfs(c.as_ptr(), &mut st) };
    if rc != 0 {
        return None;
    }
    #[allow(clippy::unnecessary_cast)] // the field types differ between platforms
    Some((st.f_bavail as u64).saturating_mul(st.f_frsize as u64))
}

/// Refuses when the file system of `path` has fewer than `need` bytes free.
pub fn check_free_space(path: &Path, need: u64) -> Result<(), GgufError> {
    let dir = parent_dir(path);
    match free_bytes(&dir) {
        Some(free) if free < need => Err(GgufError::NoSpace {
            path: path.to_path_buf(),
            need,
            free,
        }),
        _ => Ok(()),
    }
}

/// The name of the errno an I/O error carries (`ENOSPC`, `EIO`, `EDQUOT`, …), for messages.
pub fn errno_name(e: &std::io::Error) -> &'static str {
    match e.raw_os_error() {
        Some(libc::ENOSPC) => "ENOSPC",
        Some(libc::EIO) => "EIO",
        Some(libc::EDQUOT) => "EDQUOT",
        Some(libc::EFBIG) => "EFBIG",
        Some(libc::EROFS) => "EROFS",
        Some(libc::EACCES) => "EACCES",
        Some(libc::EPERM) => "EPERM",
        Some(libc::ENOENT) => "ENOENT",
        Some(libc::EBADF) => "EBADF",
        Some(libc::EINTR) => "EINTR",
        Some(_) => "OS error",
        None => "error",
    }
}

/// A failed write of `len` bytes at `offset` of `path`.
pub fn write_failed(
    path: &Path,
    what: &'static str,
    offset: u64,
    len: u64,
    source: std::io::Error,
) -> GgufError {
    GgufError::WriteFailed {
        path: path.to_path_buf(),
        what,
        offset,
        len,
        errno: errno_name(&source),
        source,
    }
}

/// `NAME.tmp.<pid>` next to `path`.
pub fn tmp_path_for(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".tmp.{}", std::process::id()));
    path.with_file_name(name)
}

/// True when another open file description holds an `flock` on `path` (a live writer).
fn is_locked(path: &Path) -> bool {
    let Ok(f) = File::open(path) else {
        return false;
    };
    // SAFETY: flock on a file descriptor this function owns.
    let rc = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_SH | libc::LOCK_NB) };
    if rc == 0 {
        // SAFETY: as above; the shared lock was only a probe.
        unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_UN) };
        return false;
    }
    std::io::Error::last_os_error().raw_os_error() == Some(libc::EWOULDBLOCK)
}

/// Creates this run's temporary file for `path` exclusively, locks it, and refuses when
/// another live run (or another writer in this process) is writing the same output.
/// A stale temporary file of a run that ended without cleaning up is left alone.
pub fn create_tmp(path: &Path) -> Result<(PathBuf, File), GgufError> {
    let tmp = tmp_path_for(path);
    let file = match OpenOptions::new()
        .write(true)
        .read(true)
        .create_new(true)
        .mode(0o644)
        .open(&tmp)
    {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            if is_locked(&tmp) {
                return Err(GgufError::Busy {
                    path: path.to_path_buf(),
                    tmp,
                    who: "another writer in this process".into(),
                });
            }
            // a leftover of an earlier process that had our pid: start it afresh
            std::fs::remove_file(&tmp).map_err(|e| GgufError::io(&tmp, e))?;
            OpenOptions::new()
                .write(true)
                .read(true)
                .create_new(true)
                .mode(0o644)
                .open(&tmp)
                .map_err(|e| GgufError::io(&tmp, e))?
        }
        Err(e) => return Err(GgufError::io(&tmp, e)),
    };
    // Blocking: a probe of another run holds a shared lock only for an instant.
    // SAFETY: flock on the descriptor of the file just created.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } != 0 {
        let e = std::io::Error::last_os_error();
        let _ = std::fs::remove_file(&tmp);
        return Err(GgufError::io(&tmp, e));
    }
    if let Some(other) = live_writer(path, &tmp) {
        let _ = std::fs::remove_file(&tmp);
        return Err(GgufError::Busy {
            path: path.to_path_buf(),
            who: format!(
                "another run (its temporary file {} is locked)",
                other.display()
            ),
            tmp: other,
        });
    }
    Ok((tmp, file))
}

/// Another `NAME.tmp.*` next to `path` (not `own`) whose lock is held.
fn live_writer(path: &Path, own: &Path) -> Option<PathBuf> {
    let mut prefix = path.file_name()?.to_os_string();
    prefix.push(".tmp.");
    let prefix = prefix.as_bytes();
    let dir = parent_dir(path);
    for entry in std::fs::read_dir(&dir).ok()?.flatten() {
        let name = entry.file_name();
        let b = name.as_bytes();
        if b.len() > prefix.len() && b.starts_with(prefix) {
            let p = path.with_file_name(&name);
            if p != own && is_locked(&p) {
                return Some(p);
            }
        }
    }
    None
}

/// Temporary files of `path` left in its directory (`NAME.tmp` and `NAME.tmp.*`), for tests
/// and tools that check nothing was left behind.
pub fn leftover_tmp_files(path: &Path) -> Vec<PathBuf> {
    let Some(name) = path.file_name() else {
        return Vec::new();
    };
    let mut prefix = name.to_os_string();
    prefix.push(".tmp");
    let prefix = prefix.as_bytes().to_vec();
    let Ok(rd) = std::fs::read_dir(parent_dir(path)) else {
        return Vec::new();
    };
    rd.flatten()
        .map(|e| e.file_name())
        .filter(|n| {
            let b = n.as_bytes();
            b == prefix.as_slice() || (b.starts_with(&prefix) && b.get(prefix.len()) == Some(&b'.'))
        })
        .map(|n| path.with_file_name(n))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_writer_of_the_same_output_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("o.gguf");
        let (tmp, _f) = create_tmp(&out).unwrap();
        assert_eq!(tmp, tmp_path_for(&out));
        let e = create_tmp(&out).unwrap_err().to_string();
        assert!(e.contains("being written") && e.contains("o.gguf"), "{e}");
        // a lock held under another name (another run's pid) is found too
        drop(_f);
        std::fs::rename(&tmp, dir.path().join("o.gguf.tmp.1")).unwrap();
        let held = File::open(dir.path().join("o.gguf.tmp.1")).unwrap();
        assert_eq!(unsafe { libc::flock(held.as_raw_fd(), libc::LOCK_EX) }, 0);
        let e = create_tmp(&out).unwrap_err().to_string();
        assert!(e.contains("o.gguf.tmp.1"), "{e}");
        assert!(!tmp.exists(), "the refused run left its temporary file");
        drop(held);
        // stale (unlocked) files do not block
        let (t2, _f2) = create_tmp(&out).unwrap();
        assert_eq!(leftover_tmp_files(&out).len(), 2);
        drop(_f2);
        std::fs::remove_file(t2).unwrap();
    }

    #[test]
    fn free_space_is_compared_with_the_need() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("o.gguf");
        assert!(free_bytes(dir.path()).is_some());
        check_free_space(&out, 1).unwrap();
        let e = check_free_space(&out, u64::MAX).unwrap_err().to_string();
        assert!(
            e.contains(&u64::MAX.to_string()) && e.contains("free"),
            "{e}"
        );
    }
}
