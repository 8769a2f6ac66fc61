//! Running a child process and measuring its wall time and peak resident memory.
//!
//! The peak is `VmHWM` from `/proc/<pid>/status`, sampled every few milliseconds while the
//! child runs: the kernel's high-water mark of the child's own address space (created at its
//! `exec`), so a sample misses only growth in the last interval. `wait4`'s `ru_maxrss` is
//! kept for reference but is not the child's alone: at `exec`, Linux folds the high-water
//! mark of the address space being replaced (the spawning process's, shared until then) into
//! the child's `maxrss`, so a bench that holds 800 MiB when it spawns `true` reads 800 MiB
//! there (measured; it made every run of `bench quantize` report the largest RSS seen so far
//! in the bench process).

use std::io;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

/// What a measured run did.
#[derive(Clone, Debug)]
pub struct Measured {
    /// Exit code (128 + signal number when killed by a signal).
    pub code: i32,
    pub wall_s: f64,
    /// Peak RSS in bytes: the last VmHWM sample (0 if none was taken).
    pub peak_rss: u64,
    /// wait4's ru_maxrss, bytes: at least the spawning process's RSS when it spawned the
    /// child (see the module documentation), so only an upper bound of the child's peak.
    pub ru_maxrss: u64,
    /// CPU time (user + system) of the child, seconds.
    pub cpu_s: f64,
}

impl Measured {
    pub fn success(&self) -> bool {
        self.code == 0
    }
}

/// `VmHWM` of a running process, in bytes (None once it has exited or on other kernels).
pub fn vm_hwm(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line
        .trim_start_matches("VmHWM:")
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib * 1024)
}

/// Spawns `cmd` and waits for it, sampling its VmHWM every `interval`.
pub fn run_measured(cmd: &mut Command, interval: Duration) -> io::Result<Measured> {
    let start = Instant::now();
    let child: Child = cmd.spawn()?;
    let pid = child.id() as libc::pid_t;
    let mut sampled = 0u64;
    loop {
        if let Some(h) = vm_hwm(pid as u32) {
            sampled = sampled.max(h);
        }
        let mut status: libc::c_int = 0;
        // SAFETY: an all-zero rusage is a valid value of this plain C struct.
        let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: wait4 on our own child with valid pointers to locals; WNOHANG never blocks.
        let r = unsafe { libc::wait4(pid, &mut status, libc::WNOHANG, &mut ru) };
        if r == pid {
            let wall_s = start.elapsed().as_secs_f64();
            let code = if libc::WIFEXITED(status) {
                libc::WEXITSTATUS(status)
            } else if libc::WIFSIGNALED(status) {
                128 + libc::WTERMSIG(status)
            } else {
                -1
            };
            // ru_maxrss is in KiB on Linux
            let ru_maxrss = ru.ru_maxrss.max(0) as u64 * 1024;
            let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 * 1e-6;
            // the Child is reaped; dropping it does nothing more
            drop(child);
            return Ok(Measured {
                code,
                wall_s,
                peak_rss: sampled,
                ru_maxrss,
                cpu_s: tv(ru.ru_utime) + tv(ru.ru_stime),
            });
        }
        if r < 0 {
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
        std::thread::sleep(interval);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sees_a_child_allocate() {
        // python3 touching 200 MB: the peak must show it; a bare `true` must not
        let small = run_measured(&mut Command::new("true"), Duration::from_millis(5)).unwrap();
        assert!(small.success());
        assert!(small.peak_rss < 50 << 20, "{small:?}");
        let big = run_measured(
            Command::new("python3").args([
                "-c",
                "import time; b = bytearray(200 * 1024 * 1024); time.sleep(0.2)",
            ]),
            Duration::from_millis(5),
        )
        .unwrap();
        assert!(big.success());
        assert!(big.peak_rss > 200 << 20, "{big:?}");
        let failed = run_measured(
            Command::new("sh").args(["-c", "exit 3"]),
            Duration::from_millis(5),
        )
        .unwrap();
        assert_eq!(failed.code, 3);
    }

    #[test]
    fn the_spawning_process_memory_is_not_the_child_s() {
        // this process touches 300 MB, then spawns a child that allocates nothing: wait4's
        // ru_maxrss carries this process's memory, the reported peak must not
        let mut held = vec![0u8; 300 << 20];
        for i in (0..held.len()).step_by(4096) {
            held[i] = (i >> 12) as u8;
        }
        let m = run_measured(
            Command::new("python3").args(["-c", "import time; time.sleep(0.1)"]),
            Duration::from_millis(5),
        )
        .unwrap();
        assert!(m.success());
        assert!(m.peak_rss < 100 << 20, "{m:?}");
        assert!(held.iter().step_by(4096 * 97).any(|&b| b != 0));
    }
}
