//! A bounded pool of device buffers (upload, storage, uniform, readback), reused across calls.
//!
//! Buffers are leased with [`StagingPool::acquire`] and go back to the pool when the
//! [`Lease`] drops. The pool never holds more than its budget in bytes: a request that does
//! not fit first evicts idle buffers and then fails with [`GpuError::PoolExhausted`]. Sizes
//! are rounded up to a size class so that tiles of the same shape reuse the same buffers and
//! a steady stream of tiles allocates nothing.

use super::GpuError;
use std::sync::Mutex;

/// What a pooled buffer is for; each role has its own usage flags.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    /// Host-written (MAP_WRITE | COPY_SRC).
    Upload,
    /// Shader storage (STORAGE | COPY_DST | COPY_SRC).
    Storage,
    /// Uniform parameters (UNIFORM | COPY_DST).
    Uniform,
    /// Host-read (MAP_READ | COPY_DST).
    Readback,
}

impl Role {
    fn usage(self) -> wgpu::BufferUsages {
        use wgpu::BufferUsages as U;
        match self {
            Role::Upload => U::MAP_WRITE | U::COPY_SRC,
            Role::Storage => U::STORAGE | U::COPY_DST | U::COPY_SRC,
            Role::Uniform => U::UNIFORM | U::COPY_DST,
            Role::Readback => U::MAP_READ | U::COPY_DST,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Role::Upload => "upload",
            Role::Storage => "storage",
            Role::Uniform => "uniform",
            Role::Readback => "readback",
        }
    }
}

struct Pooled {
    buffer: wgpu::Buffer,
    role: Role,
    size: u64,
    /// Creation order: of several idle fits the oldest is leased, so the same sequence of
    /// requests on the same idle buffers always gets the same buffers (and the dispatcher's
    /// cached bind groups, keyed by buffers, are found again).
    serial: u64,
}

#[derive(Default)]
struct State {
    idle: Vec<Pooled>,
    /// Bytes of all buffers the pool owns (idle and leased).
    allocated: u64,
    created: u64,
    /// Buffers destroyed to make room (their bind groups must not be used again).
    destroyed: u64,
}

/// Counters for tests and `gpuq info`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolStats {
    pub budget: u64,
    pub allocated: u64,
    pub buffers_created: u64,
    /// Idle buffers destroyed to make room for larger ones.
    pub buffers_destroyed: u64,
    pub idle_buffers: usize,
}

pub struct StagingPool {
    device: wgpu::Device,
    budget: u64,
    max_buffer: u64,
    state: Mutex<State>,
}

/// A buffer on loan from the pool; returns to it on drop.
pub struct Lease<'a> {
    pool: &'a StagingPool,
    buffer: wgpu::Buffer,
    role: Role,
    size: u64,
    serial: u64,
}

impl Lease<'_> {
    pub fn buffer(&self) -> &wgpu::Buffer {
        &self.buffer
    }

    /// The buffer's full size (at least what was asked for).
    pub fn size(&self) -> u64 {
        self.size
    }
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        let mut s = self.pool.state.lock().unwrap_or_else(|e| e.into_inner());
        s.idle.push(Pooled {
            buffer: self.buffer.clone(),
            role: self.role,
            size: self.size,
            serial: self.serial,
        });
    }
}

/// Size class: powers of two up to 1 MiB, then multiples of 1 MiB, capped at `max`.
fn size_class(n: u64, max: u64) -> u64 {
    const MIB: u64 = 1 << 20;
    let n = n.max(256);
    let c = if n <= MIB {
        n.next_power_of_two()
    } else {
        n.div_ceil(MIB) * MIB
    };
    c.min(max).max(n)
}

impl StagingPool {
    /// A pool of at most `budget` bytes; no single buffer larger than `max_buffer`.
    pub fn new(device: wgpu::Device, budget: u64, max_buffer: u64) -> Self {
        StagingPool {
            device,
            budget,
            max_buffer,
            state: Mutex::new(State::default()),
        }
    }

    pub fn budget(&self) -> u64 {
        self.budget
    }

    pub fn stats(&self) -> PoolStats {
        let s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        PoolStats {
            budget: self.budget,
            allocated: s.allocated,
            buffers_created: s.created,
            buffers_destroyed: s.destroyed,
            idle_buffers: s.idle.len(),
        }
    }

    /// Leases a buffer of `role` with at least `min_size` bytes: an idle one of exactly its
    /// size class (the oldest of several), else a new one (evicting idle buffers if the
    /// budget requires). Only exact
    /// classes are reused, so a lease is never much larger than asked for and callers that
    /// size their work to a share of the budget (two tiles in flight, half each) stay inside it.
    pub fn acquire(&self, role: Role, min_size: u64) -> Result<Lease<'_>, GpuError> {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let class = size_class(min_size, self.max_buffer);
        let best = s
            .idle
            .iter()
            .enumerate()
            .filter(|(_, p)| p.role == role && p.size == class)
            .min_by_key(|(_, p)| p.serial)
            .map(|(i, _)| i);
        if let Some(i) = best {
            let p = s.idle.swap_remove(i);
            return Ok(Lease {
                pool: self,
                buffer: p.buffer,
                role: p.role,
                size: p.size,
                serial: p.serial,
            });
        }
        let size = class;
        let too_big = |s: &State| GpuError::PoolExhausted {
            role: role.name(),
            size,
            budget: self.budget,
            in_use: s.allocated,
        };
        if size > self.max_buffer {
            return Err(too_big(&s));
        }
        // Evict idle buffers, largest first, until the new one fits.
        while s.allocated + size > self.budget {
            let Some(i) = s
                .idle
                .iter()
                .enumerate()
                .max_by_key(|(_, p)| p.size)
                .map(|(i, _)| i)
            else {
                return Err(too_big(&s));
            };
            let p = s.idle.swap_remove(i);
            s.allocated -= p.size;
            s.destroyed += 1;
            p.buffer.destroy();
        }
        let label = format!("gpuq pool {} {}", role.name(), size);
        let buffer = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(&label),
            size,
            usage: role.usage(),
            mapped_at_creation: false,
        });
        s.allocated += size;
        s.created += 1;
        Ok(Lease {
            pool: self,
            buffer,
            role,
            size,
            serial: s.created,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn size_classes() {
        assert_eq!(size_class(1, 1 << 30), 256);
        assert_eq!(size_class(1000, 1 << 30), 1024);
        assert_eq!(size_class((1 << 20) + 1, 1 << 30), 2 << 20);
        assert_eq!(size_class(5 << 20, 1 << 30), 5 << 20);
        assert_eq!(size_class(3000, 2048), 3000); // never below the request
    }

    #[test]
    fn pool_reuses_and_stays_within_budget() {
        let ctx = match crate::gpu::context::GpuContext::shared() {
            Ok(c) => c,
            Err(e) if std::env::var("GPUQ_TEST_ALLOW_NO_GPU").as_deref() == Ok("1") => {
                eprintln!("skipping: {e}");
                return;
            }
            Err(e) => panic!("{e} (set GPUQ_TEST_ALLOW_NO_GPU=1 to skip)"),
        };
        let pool = StagingPool::new(ctx.device.clone(), 4 << 20, ctx.limits.max_buffer_size);
        {
            let a = pool.acquire(Role::Storage, 1 << 20).unwrap();
            let _b = pool.acquire(Role::Readback, 1 << 20).unwrap();
            assert_eq!(a.size(), 1 << 20);
            // 3 MiB more would pass the 4 MiB budget while a and b are leased
            assert!(pool.acquire(Role::Storage, 3 << 20).is_err());
        }
        let s = pool.stats();
        assert_eq!(
            (s.allocated, s.buffers_created, s.idle_buffers),
            (2 << 20, 2, 2)
        );
        // reuse: same role and size class, nothing new
        drop(pool.acquire(Role::Storage, (1 << 20) - 100).unwrap());
        assert_eq!(pool.stats().buffers_created, 2);
        // a much smaller request does not take the 1 MiB buffer (leases stay near their size)
        let small = pool.acquire(Role::Storage, 1000).unwrap();
        assert_eq!(small.size(), 1024);
        assert_eq!(pool.stats().buffers_created, 3);
        drop(small);
        // a larger request evicts idle buffers instead of growing past the budget
        let big = pool.acquire(Role::Upload, 3 << 20).unwrap();
        assert!(pool.stats().allocated <= 4 << 20, "{:?}", pool.stats());
        drop(big);
        assert!(pool.acquire(Role::Storage, 5 << 20).is_err());
    }
}
