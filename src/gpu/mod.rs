//! The wgpu backend: device context ([`context`]), pipeline cache keyed by a struct
//! ([`kernels`]), bounded staging pool ([`staging`]), the one dispatch path ([`dispatch`]),
//! and the kernels' glue: codecs ([`codecs`], table in [`table`]), BitNet absmean
//! ([`ternary`]), statistics ([`stats`]), equilibrium pruning's score pass ([`prune`]).
//!
//! Everything that touches wgpu sits behind the cargo feature `gpu`; [`GpuError`], the
//! embedded WGSL text ([`wgsl`]), the kernel table ([`table`]) and the lookup tables some
//! kernels read ([`lookup`]) exist in every build.

pub mod lookup;
pub mod table;
pub mod wgsl;

#[cfg(feature = "gpu")]
pub mod codecs;
#[cfg(feature = "gpu")]
pub mod context;
#[cfg(feature = "gpu")]
pub mod dispatch;
#[cfg(feature = "gpu")]
pub mod kernels;
#[cfg(feature = "gpu")]
pub mod prune;
#[cfg(feature = "gpu")]
pub mod staging;
#[cfg(feature = "gpu")]
pub mod stats;
#[cfg(feature = "gpu")]
pub mod ternary;

use crate::ggml_type::GgmlType;

/// How to get a GPU adapter when there is none (printed with [`GpuError::NoAdapter`]).
pub const NO_ADAPTER_HINT: &str = "install a Vulkan, Metal or DX12 driver; on Linux without a GPU \
     the software Vulkan driver lavapipe works: `apt-get install mesa-vulkan-drivers` \
     (or run with --backend cpu)";

/// Everything that can go wrong while driving a GPU. Errors are `Clone` so the process-wide
/// context can hand the same failure to every caller.
#[derive(Debug, Clone, thiserror::Error)]
pub enum GpuError {
    /// This build has no wgpu backend.
    #[error(
        "gpuq was built without the `gpu` feature; rebuild with default features or use --backend cpu"
    )]
    NotBuilt,
    /// No adapter on the backends asked for.
    #[error("no GPU adapter found (wgpu backends: {backends}{detail}); {hint}")]
    NoAdapter {
        backends: String,
        detail: String,
        hint: &'static str,
    },
    /// `GPUQ_BACKEND` names no wgpu backend.
    #[error("GPUQ_BACKEND={0}: expected one of vulkan, metal, dx12, gl")]
    BadBackendEnv(String),
    /// The adapter refused to create a device.
    #[error("adapter '{adapter}' could not create a device: {reason}")]
    RequestDevice { adapter: String, reason: String },
    /// Something did not finish in time (adapter discovery, a submission, a buffer map).
    #[error("GPU timed out after {secs} s while {what}")]
    Timeout { what: String, secs: u64 },
    /// The device was lost (driver reset, out of memory, device removed).
    #[error("GPU device lost: {0}")]
    DeviceLost(String),
    /// wgpu reported an error (validation, out of memory, internal) that no one caught.
    #[error("wgpu error while {context}: {message}")]
    Wgpu { context: String, message: String },
    /// A shader failed to compile into a pipeline.
    #[error("pipeline {label}: {message}")]
    Pipeline { label: String, message: String },
    /// A buffer could not be mapped.
    #[error("mapping a {what} buffer failed: {message}")]
    Map { what: &'static str, message: String },
    /// The staging pool cannot hold a buffer of this size within its budget.
    #[error(
        "staging pool: a {size}-byte {role} buffer does not fit the {budget}-byte budget ({in_use} bytes in use)"
    )]
    PoolExhausted {
        role: &'static str,
        size: u64,
        budget: u64,
        in_use: u64,
    },
    /// One row does not fit a storage binding or the staging budget.
    #[error(
        "{ty}: one row of {row_len} elements needs {bytes} bytes, more than the {limit}-byte limit ({which})"
    )]
    RowTooLarge {
        ty: GgmlType,
        row_len: usize,
        bytes: u64,
        limit: u64,
        which: &'static str,
    },
    /// No GPU kernel for this type and direction.
    #[error("no GPU {direction} kernel for {ty}")]
    NoKernel {
        ty: GgmlType,
        direction: &'static str,
    },
}
