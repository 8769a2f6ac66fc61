//! The block layouts of the legacy quant types, byte for byte as ggml's `ggml-common.h`
//! declares them (`block_q4_0` … `block_q8_0`). f16 fields are kept as their raw bits in
//! little-endian order (`u16::to_le`/`from_le` at the edges), so the structs are plain bytes.

use bytemuck::{Pod, Zeroable};

/// Elements per block of every legacy type (`QK4_0` = `QK4_1` = `QK5_0` = `QK5_1` = `QK8_0`).
pub const QK: usize = 32;

/// ggml `block_q4_0`: `x = d * (q - 8)`, `qs[j]` holds element j (low nibble) and j+16 (high).
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable, Debug, PartialEq, Eq)]
pub struct BlockQ4_0 {
    pub d: u16,
    pub qs: [u8; QK / 2],
}

/// ggml `block_q4_1`: `x = d * q + m`.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable, Debug, PartialEq, Eq)]
pub struct BlockQ4_1 {
    pub d: u16,
    pub m: u16,
    pub qs: [u8; QK / 2],
}

/// ggml `block_q5_0`: `x = d * (q - 16)`; the 5th bit of element j is bit j of `qh` (LE u32).
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable, Debug, PartialEq, Eq)]
pub struct BlockQ5_0 {
    pub d: u16,
    pub qh: [u8; 4],
    pub qs: [u8; QK / 2],
}

/// ggml `block_q5_1`: `x = d * q + m`, 5th bits as in Q5_0.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable, Debug, PartialEq, Eq)]
pub struct BlockQ5_1 {
    pub d: u16,
    pub m: u16,
    pub qh: [u8; 4],
    pub qs: [u8; QK / 2],
}

/// ggml `block_q8_0`: `x = d * q`, q a signed byte.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable, Debug, PartialEq, Eq)]
pub struct BlockQ8_0 {
    pub d: u16,
    pub qs: [i8; QK],
}

// The static_asserts of ggml-common.h.
const _: () = assert!(size_of::<BlockQ4_0>() == 2 + QK / 2);
const _: () = assert!(size_of::<BlockQ4_1>() == 2 * 2 + QK / 2);
const _: () = assert!(size_of::<BlockQ5_0>() == 2 + 4 + QK / 2);
const _: () = assert!(size_of::<BlockQ5_1>() == 2 * 2 + 4 + QK / 2);
const _: () = assert!(size_of::<BlockQ8_0>() == 2 + QK);

/// Writes a block into its bytes (`dst.len() == size_of::<B>()`; alignment does not matter).
#[inline]
pub fn store<B: Pod>(blk: &B, dst: &mut [u8]) {
    dst.copy_from_slice(bytemuck::bytes_of(blk));
}

/// Reads a block from its bytes (`src.len() == size_of::<B>()`; alignment does not matter).
#[inline]
pub fn load<B: Pod>(src: &[u8]) -> B {
    bytemuck::pod_read_unaligned(src)
}
