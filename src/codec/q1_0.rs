//! Q1_0: one sign bit per weight and one f16 scale per 128 elements (ggml `block_q1_0`,
//! ggml-common.h). Encoder: ggml `quantize_row_q1_0_ref` (what `quantize_q1_0` and so
//! llama-quantize always run: importance weights are ignored); decoder:
//! `dequantize_row_q1_0` (ggml-quants.c).

use super::CpuCodec;
use super::legacy::blocks::{load, store};
use crate::codec::float::{f16_bits_to_f32, ggml_fp32_to_fp16_bits};
use crate::ggml_type::GgmlType;
use bytemuck::{Pod, Zeroable};

/// ggml `QK1_0`.
pub const QK1_0: usize = 128;

/// ggml `block_q1_0`: `x = bit ? d : -d`, element j in bit j%8 of byte j/8.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable, Debug, PartialEq, Eq)]
pub struct BlockQ1_0 {
    pub d: u16,
    pub qs: [u8; QK1_0 / 8],
}

const _: () = assert!(size_of::<BlockQ1_0>() == 2 + QK1_0 / 8);

pub const Q1_0_CODEC: CpuCodec = CpuCodec {
    ty: GgmlType::Q1_0,
    encode: Some(encode_q1_0),
    decode: Some(decode_q1_0),
};

/// `quantize_row_q1_0_ref` for one block: `d` is the mean magnitude (summed in order, then
/// divided by 128); a bit is set for `x >= 0` (so for -0.0, not for NaN).
pub fn q1_0_block(x: &[f32]) -> BlockQ1_0 {
    let mut sum_abs = 0.0f32;
    for &v in x {
        sum_abs += v.abs();
    }
    let d = sum_abs / QK1_0 as f32;
    let mut qs = [0u8; QK1_0 / 8];
    for (j, &v) in x.iter().enumerate() {
        if v >= 0.0 {
            qs[j / 8] |= 1 << (j % 8);
        }
    }
    BlockQ1_0 {
        d: ggml_fp32_to_fp16_bits(d).to_le(),
        qs,
    }
}

/// ggml `quantize_q1_0` for one row (the weights are ignored, as ggml does).
pub fn encode_q1_0(src: &[f32], dst: &mut [u8], _weights: Option<&[f32]>) {
    for (x, d) in src
        .chunks_exact(QK1_0)
        .zip(dst.chunks_exact_mut(size_of::<BlockQ1_0>()))
    {
        store(&q1_0_block(x), d);
    }
}

/// ggml `dequantize_row_q1_0`.
pub fn decode_q1_0(src: &[u8], dst: &mut [f32]) {
    for (s, y) in src
        .chunks_exact(size_of::<BlockQ1_0>())
        .zip(dst.chunks_exact_mut(QK1_0))
    {
        let b: BlockQ1_0 = load(s);
        let d = f16_bits_to_f32(u16::from_le(b.d));
        for (j, yj) in y.iter_mut().enumerate() {
            *yj = if (b.qs[j / 8] >> (j % 8)) & 1 != 0 { d } else { -d };
        }
    }
}
