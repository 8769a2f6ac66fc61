//! The one GPU dispatch path. A kernel run is described as data ([`Dispatch`]: kernel key,
//! parameters, bindings, invocations); [`Dispatcher::submit`] uploads its inputs, records the
//! pass and the copy of its output into a readback buffer, and submits; the returned
//! [`InFlight`] is read back by [`InFlight::read_into`], the only routine of the GPU code that
//! maps, polls and copies device memory to the host. Several dispatches may be in flight at
//! once: the codec runner submits a tile before it reads the previous one back.
//!
//! Every kernel uses the bind group layout of `gpu::kernels::Layout::Codec`: 0 the uniform
//! [`CodecParams`], 1 the source words, 2 the output words, 3 a side input (importance weights,
//! per-row scales, thresholds, a round trip; a 16-byte dummy when there is none).
//!
//! Nothing is created per dispatch that can be reused: pipelines are cached by `KernelKey`
//! (`gpu::kernels`), buffers come from the staging pool (`gpu::staging`: a steady stream of
//! tiles of one shape allocates nothing), and bind groups are cached by the buffers and
//! binding sizes they name ([`Dispatcher::bind_groups_created`]), so the tiles of a call,
//! which alternate between the same pooled buffers, reuse a handful of bind groups. What is
//! made per dispatch is what wgpu makes single-use: the command encoder and its buffer (and
//! the staging memory behind `Queue::write_buffer`, owned by wgpu).

use super::GpuError;
use super::context::GpuContext;
use super::kernels::{KernelCache, KernelKey, Layout};
use super::staging::{Lease, Role, StagingPool};
use std::collections::HashMap;
use std::num::NonZeroU64;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, mpsc};

/// Uniform parameters of one dispatch; WGSL twin: `CodecParams` in common.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, bytemuck::Pod, bytemuck::Zeroable)]
pub struct CodecParams {
    pub n_blocks: u32,
    pub n_groups: u32,
    pub row_len: u32,
    pub blocks_per_row: u32,
    pub src_offset: u32,
    pub dst_offset: u32,
    pub has_weights: u32,
    /// Always 0: WGSL `zero`, an opaque zero (kquants.wgsl `keep`).
    pub _pad: u32,
}

/// Bytes of the uniform buffer of one dispatch.
const PARAMS_SLOT: u64 = 256;

/// The words of a dispatch's source (binding 1) or side input (binding 3).
#[derive(Clone, Copy)]
pub enum Input<'a> {
    /// Bytes to upload for this dispatch alone (padded with zero bytes to a whole word).
    Bytes(&'a [u8]),
    /// A buffer already on the device ([`Dispatcher::upload`]), `size` bytes of it bound.
    Resident(&'a wgpu::Buffer, u64),
}

/// One kernel run, described as data.
pub struct Dispatch<'a> {
    pub key: KernelKey,
    pub params: CodecParams,
    pub src: Input<'a>,
    /// Binding 3; `None` binds the dummy. A side input shared by several dispatches is best
    /// uploaded once ([`Dispatcher::upload`]) and passed as [`Input::Resident`].
    pub side: Option<Input<'a>>,
    /// Bytes of output to read back (binding 2 is this, padded to a whole word).
    pub out_bytes: u64,
    /// Invocations to launch (rounded up to whole workgroups, split in 2-D past the x limit).
    pub invocations: u64,
    /// Fill the output with 0xa5 bytes before the kernel runs (tests: a word the kernel does
    /// not write then shows up instead of stale or zero data).
    pub poison: bool,
}

/// A submitted dispatch whose output has not been read back yet. Its buffers stay leased
/// until then.
pub struct InFlight<'p> {
    owner: &'p Dispatcher,
    label: String,
    submission: wgpu::SubmissionIndex,
    readback: Lease<'p>,
    out_bytes: u64,
    _held: Vec<Lease<'p>>,
    /// The dispatch was split in 2-D (more workgroups than the x limit).
    pub two_d: bool,
}

/// Submits dispatches on one device: pipeline cache, staging pool, bind group cache, dummy
/// binding.
pub struct Dispatcher {
    ctx: Arc<GpuContext>,
    kernels: KernelCache,
    pool: StagingPool,
    dummy: wgpu::Buffer,
    max_workgroups_x: Option<u32>,
    bind_groups: Mutex<BindGroups>,
    bind_groups_created: AtomicU64,
}

/// The buffers and bound sizes of one bind group (layout `Codec`): uniform, source, output,
/// side input (the dummy when there is none).
#[derive(Clone, PartialEq, Eq, Hash)]
struct BindKey {
    uniform: wgpu::Buffer,
    src: (wgpu::Buffer, u64),
    dst: (wgpu::Buffer, u64),
    side: (wgpu::Buffer, u64),
}

/// Bind groups by the buffers they name. Emptied when the pool has destroyed a buffer since
/// (a destroyed buffer's bind groups are unusable) and when it grows past [`MAX_BIND_GROUPS`]
/// (tiles of many shapes).
#[derive(Default)]
struct BindGroups {
    pool_destroyed: u64,
    map: HashMap<BindKey, wgpu::BindGroup>,
}

/// Bind groups kept at most; a steady stream of tiles uses a few (two tiles in flight, each
/// leasing its own buffers, plus the last partial tile of a call).
const MAX_BIND_GROUPS: usize = 256;

pub(crate) fn round4(n: u64) -> u64 {
    n.div_ceil(4) * 4
}

fn binding(b: &wgpu::Buffer, size: u64) -> wgpu::BindingResource<'_> {
    wgpu::BindingResource::Buffer(wgpu::BufferBinding {
        buffer: b,
        offset: 0,
        size: NonZeroU64::new(size),
    })
}

impl Dispatcher {
    /// A dispatcher with a staging pool of `budget` bytes; `max_workgroups_x` caps the x
    /// dimension below the device's limit (tests force 2-D dispatches with it).
    pub fn new(ctx: Arc<GpuContext>, budget: u64, max_workgroups_x: Option<u32>) -> Self {
        let kernels = KernelCache::new(ctx.clone());
        let pool = StagingPool::new(ctx.device.clone(), budget, ctx.limits.max_buffer_size);
        let dummy = ctx.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("gpuq dummy side binding"),
            size: 16,
            usage: wgpu::BufferUsages::STORAGE,
            mapped_at_creation: false,
        });
        Dispatcher {
            ctx,
            kernels,
            pool,
            dummy,
            max_workgroups_x,
            bind_groups: Mutex::new(BindGroups::default()),
            bind_groups_created: AtomicU64::new(0),
        }
    }

    /// Bind groups created so far (tests: a warm stream of tiles creates none).
    pub fn bind_groups_created(&self) -> u64 {
        self.bind_groups_created.load(Ordering::Relaxed)
    }

    /// The bind group naming `key`'s buffers: cached, else created (and cached).
    fn bind_group(&self, key: BindKey, label: &str) -> wgpu::BindGroup {
        let destroyed = self.pool.stats().buffers_destroyed;
        let mut cache = self.bind_groups.lock().unwrap_or_else(|e| e.into_inner());
        if cache.pool_destroyed != destroyed || cache.map.len() >= MAX_BIND_GROUPS {
            cache.map.clear();
            cache.pool_destroyed = destroyed;
        }
        if let Some(g) = cache.map.get(&key) {
            return g.clone();
        }
        let g = self
            .ctx
            .device
            .create_bind_group(&wgpu::BindGroupDescriptor {
                label: Some(label),
                layout: self.kernels.bind_group_layout(Layout::Codec),
                entries: &[
                    wgpu::BindGroupEntry {
                        binding: 0,
                        resource: binding(&key.uniform, std::mem::size_of::<CodecParams>() as u64),
                    },
                    wgpu::BindGroupEntry {
                        binding: 1,
                        resource: binding(&key.src.0, key.src.1),
                    },
                    wgpu::BindGroupEntry {
                        binding: 2,
                        resource: binding(&key.dst.0, key.dst.1),
                    },
                    wgpu::BindGroupEntry {
                        binding: 3,
                        resource: binding(&key.side.0, key.side.1),
                    },
                ],
            });
        self.bind_groups_created.fetch_add(1, Ordering::Relaxed);
        cache.map.insert(key, g.clone());
        g
    }

    pub fn context(&self) -> &Arc<GpuContext> {
        &self.ctx
    }

    pub fn pool(&self) -> &StagingPool {
        &self.pool
    }

    pub fn kernels(&self) -> &KernelCache {
        &self.kernels
    }

    /// Writes `bytes` (padded with zeros to a whole word) into `buffer` at 0, through the
    /// queue: no wait, the copy runs before the next submission's commands.
    fn write(&self, buffer: &wgpu::Buffer, bytes: &[u8]) {
        let whole = bytes.len() / 4 * 4;
        if whole > 0 {
            self.ctx.queue.write_buffer(buffer, 0, &bytes[..whole]);
        }
        if whole < bytes.len() {
            let mut tail = [0u8; 4];
            tail[..bytes.len() - whole].copy_from_slice(&bytes[whole..]);
            self.ctx.queue.write_buffer(buffer, whole as u64, &tail);
        }
    }

    /// Uploads `bytes` into a storage buffer that later dispatches read as
    /// [`Input::Resident`]; the buffer is leased until the lease drops.
    pub fn upload(&self, bytes: &[u8]) -> Result<Lease<'_>, GpuError> {
        let lease = self
            .pool
            .acquire(Role::Storage, round4(bytes.len() as u64).max(4))?;
        self.write(lease.buffer(), bytes);
        Ok(lease)
    }

    /// Workgroup counts (x, y) for `invocations` in workgroups of `wg`, split in 2-D past the
    /// x limit. The one sizer of every dispatch.
    pub fn workgroups(&self, invocations: u64, wg: u32) -> Result<(u32, u32), GpuError> {
        let groups = invocations.div_ceil(wg.max(1) as u64).max(1);
        let limit = self.ctx.limits.max_compute_workgroups_per_dimension as u64;
        let max_x = match self.max_workgroups_x {
            Some(m) => limit.min(m as u64).max(1),
            None => limit,
        };
        if groups <= max_x {
            return Ok((groups as u32, 1));
        }
        let y = groups.div_ceil(max_x);
        if y > limit {
            return Err(GpuError::Wgpu {
                context: "planning a dispatch".into(),
                message: format!("{groups} workgroups exceed {max_x} x {limit}"),
            });
        }
        Ok((groups.div_ceil(y) as u32, y as u32))
    }

    /// Uploads the inputs of `d`, records its pass and the copy of its output to a readback
    /// buffer, and submits. Nothing waits here.
    pub fn submit(&self, d: &Dispatch<'_>) -> Result<InFlight<'_>, GpuError> {
        let pipeline = self.kernels.pipeline(d.key)?;
        let label = d.key.to_string();
        let device = &self.ctx.device;
        let out_pad = round4(d.out_bytes).max(4);
        let mut held = Vec::with_capacity(4);

        let uniform = self.pool.acquire(Role::Uniform, PARAMS_SLOT)?;
        self.ctx
            .queue
            .write_buffer(uniform.buffer(), 0, bytemuck::bytes_of(&d.params));
        let (src_buf, src_size) = match d.src {
            Input::Resident(buf, size) => (buf.clone(), round4(size).max(4)),
            Input::Bytes(b) => {
                let lease = self.upload(b)?;
                let buf = lease.buffer().clone();
                held.push(lease);
                (buf, round4(b.len() as u64).max(4))
            }
        };
        let side = match d.side {
            Some(Input::Resident(buf, size)) => (buf.clone(), round4(size).max(16)),
            Some(Input::Bytes(b)) => {
                let size = round4(b.len() as u64).max(16);
                let lease = self.pool.acquire(Role::Storage, size)?;
                self.write(lease.buffer(), b);
                let buf = lease.buffer().clone();
                held.push(lease);
                (buf, size)
            }
            None => (self.dummy.clone(), 16),
        };
        let dst = self.pool.acquire(Role::Storage, out_pad)?;
        if d.poison {
            self.write(dst.buffer(), &vec![0xa5u8; out_pad as usize]);
        }
        let readback = self.pool.acquire(Role::Readback, out_pad)?;

        let bind_group = self.bind_group(
            BindKey {
                uniform: uniform.buffer().clone(),
                src: (src_buf, src_size),
                dst: (dst.buffer().clone(), out_pad),
                side,
            },
            &label,
        );
        let (x, y) = self.workgroups(d.invocations, d.key.workgroup_size)?;
        let mut enc = device.create_command_encoder(&wgpu::CommandEncoderDescriptor {
            label: Some(&label),
        });
        {
            let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some(&label),
                timestamp_writes: None,
            });
            pass.set_pipeline(&pipeline);
            pass.set_bind_group(0, &bind_group, &[]);
            pass.dispatch_workgroups(x, y, 1);
        }
        enc.copy_buffer_to_buffer(dst.buffer(), 0, readback.buffer(), 0, out_pad);
        let submission = self.ctx.queue.submit([enc.finish()]);
        held.push(uniform);
        held.push(dst);
        Ok(InFlight {
            owner: self,
            label,
            submission,
            readback,
            out_bytes: d.out_bytes,
            _held: held,
            two_d: y > 1,
        })
    }
}

impl InFlight<'_> {
    /// Waits for the dispatch and copies its first `dst.len()` output bytes (at most
    /// `out_bytes`) into `dst`. On any failure the readback buffer is unmapped, so it goes
    /// back to the pool unmapped and cannot poison a later submission.
    pub fn read_into(self, dst: &mut [u8]) -> Result<(), GpuError> {
        let ctx = &self.owner.ctx;
        let n = dst.len().min(self.out_bytes as usize);
        let size = round4(self.out_bytes).max(4);
        let buffer = self.readback.buffer();
        let slice = buffer.slice(0..size);
        let (tx, rx) = mpsc::channel();
        slice.map_async(wgpu::MapMode::Read, move |r| {
            let _ = tx.send(r.map_err(|e| e.to_string()));
        });
        let waited = ctx.wait_for(self.submission.clone(), &self.label);
        let r = waited.and_then(|()| mapped(ctx, rx));
        if let Err(e) = r {
            buffer.unmap();
            return Err(e);
        }
        {
            let view = slice.get_mapped_range().map_err(|e| GpuError::Map {
                what: "readback",
                message: e.to_string(),
            });
            match view {
                Ok(view) => dst[..n].copy_from_slice(&view[..n]),
                Err(e) => {
                    buffer.unmap();
                    return Err(e);
                }
            }
        }
        buffer.unmap();
        Ok(())
    }
}

/// Waits for the map callback after the device poll. Another thread's poll may be the one
/// that runs our callback (several runners share one device), so a callback that has not
/// arrived yet is waited for, polling again, instead of failing.
fn mapped(ctx: &GpuContext, rx: mpsc::Receiver<Result<(), String>>) -> Result<(), GpuError> {
    let deadline = std::time::Instant::now() + ctx.wait_timeout();
    loop {
        match rx.recv_timeout(std::time::Duration::from_millis(5)) {
            Ok(Ok(())) => return Ok(()),
            Ok(Err(message)) => {
                return Err(GpuError::Map {
                    what: "readback",
                    message,
                });
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                return Err(GpuError::Map {
                    what: "readback",
                    message: "the map callback was dropped".into(),
                });
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                if std::time::Instant::now() > deadline {
                    return Err(GpuError::Map {
                        what: "readback",
                        message: format!(
                            "the map callback did not run within {} s of the poll",
                            ctx.wait_timeout().as_secs()
                        ),
                    });
                }
                let _ = ctx.device.poll(wgpu::PollType::Poll);
            }
        }
    }
}
