//! The block layouts of the non-linear 4-bit types, byte for byte as ggml-common.h declares
//! them (`block_iq4_nl`, `block_iq4_xs`), and their code book `kvalues_iq4nl`.

use bytemuck::{Pod, Zeroable};

/// ggml `QK4_NL`: elements per IQ4_NL block (and per scale group of IQ4_XS).
pub const QK4_NL: usize = 32;
/// ggml `QK_K`: elements per IQ4_XS super-block.
pub const QK_K: usize = 256;

/// ggml `kvalues_iq4nl`: the 16 levels a 4-bit index selects (times the block scale).
pub const KVALUES_IQ4NL: [i8; 16] = [
    -127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113,
];

/// ggml `block_iq4_nl`: `x = d * kvalues_iq4nl[q]`; `qs[j]` holds element j (low nibble) and
/// element j+16 (high nibble).
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable, Debug, PartialEq, Eq)]
pub struct BlockIq4Nl {
    pub d: u16,
    pub qs: [u8; QK4_NL / 2],
}

/// ggml `block_iq4_xs`: eight 32-element groups with 6-bit scales `ls` (low 4 bits in
/// `scales_l`, two groups per byte; high 2 bits in `scales_h`, bits 2*ib..2*ib+2);
/// `x = d * (ls - 32) * kvalues_iq4nl[q]`, nibbles per group as in IQ4_NL.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable, Debug, PartialEq, Eq)]
pub struct BlockIq4Xs {
    pub d: u16,
    pub scales_h: u16,
    pub scales_l: [u8; QK_K / 64],
    pub qs: [u8; QK_K / 2],
}

// The static_asserts of ggml-common.h.
const _: () = assert!(size_of::<BlockIq4Nl>() == 2 + QK4_NL / 2);
const _: () = assert!(size_of::<BlockIq4Xs>() == 2 + 2 + QK_K / 64 + QK_K / 2);
