//! The routing table: which operations the GPU backend has a kernel for. Everything else runs
//! on the CPU twin, also under `--backend gpu` (`gpuq info` prints this table). Read from the
//! GPU codec table (`gpu::table`), present in every build.

use super::compute::Op;
use crate::codec::{self, absmean};
use crate::ggml_type::GgmlType;
use crate::gpu::table::{self, Scale};

/// True when the GPU backend runs `op` (when there is a GPU backend).
pub fn gpu_has(op: Op) -> bool {
    match op {
        Op::Encode { ty, weighted } => table::can_encode_with(ty, weighted),
        Op::Decode(ty) => table::can_decode(ty),
        Op::AbsmeanSums | Op::Stats | Op::Fidelity => true,
        Op::ElementScores | Op::GroupScores | Op::Energies => true,
        Op::AbsmeanEncode(ty) => absmean::supports(ty) && table::gpu_codec(ty).is_some(),
        Op::EncodeI2s | Op::DecodeI2s => {
            table::gpu_codec(GgmlType::I2_S).is_some_and(|c| c.scale == Scale::Tensor)
        }
    }
}

/// One line per type with a GPU kernel: what runs there (for `gpuq info`).
pub fn describe() -> Vec<String> {
    table::GPU_CODECS
        .iter()
        .map(|c| {
            let enc = match (
                gpu_has(Op::Encode {
                    ty: c.ty,
                    weighted: false,
                }),
                gpu_has(Op::Encode {
                    ty: c.ty,
                    weighted: true,
                }),
            ) {
                (true, true) => "encode (also with imatrix)",
                (true, false) => "encode (imatrix encodes on the CPU)",
                _ if c.scale == Scale::Tensor => "encode (tensor scale)",
                _ if codec::can_encode(c.ty) => "encodes on the CPU (no GPU encoder)",
                _ => "no encode",
            };
            let dec = if gpu_has(Op::Decode(c.ty)) || c.scale == Scale::Tensor {
                "decode"
            } else {
                "no decode"
            };
            format!("{:<7} {enc}, {dec}  [{}]", c.ty.name(), c.shader.name)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_follow_the_kernel_table() {
        assert!(gpu_has(Op::Encode {
            ty: GgmlType::Q4_K,
            weighted: true
        }));
        assert!(!gpu_has(Op::Encode {
            ty: GgmlType::Q4_0,
            weighted: true
        }));
        assert!(gpu_has(Op::Encode {
            ty: GgmlType::Q4_0,
            weighted: false
        }));
        // I2_S needs its tensor scale: only the I2_S operations reach its kernels
        assert!(!gpu_has(Op::Decode(GgmlType::I2_S)));
        assert!(gpu_has(Op::DecodeI2s));
        // the grid i-quants decode on the GPU; their searches encode on the CPU
        assert!(gpu_has(Op::Decode(GgmlType::IQ2_XXS)));
        assert!(!gpu_has(Op::Encode {
            ty: GgmlType::IQ2_XXS,
            weighted: true
        }));
        assert!(gpu_has(Op::Encode {
            ty: GgmlType::IQ4_XS,
            weighted: true
        }));
        assert!(!gpu_has(Op::Encode {
            ty: GgmlType::MXFP4,
            weighted: true
        }));
        assert!(!gpu_has(Op::Decode(GgmlType::F32)));
        assert!(
            describe()
                .iter()
                .any(|l| l.starts_with("IQ1_M") && l.contains("encodes on the CPU"))
        );
        assert!(gpu_has(Op::AbsmeanEncode(GgmlType::TQ1_0)));
        assert!(gpu_has(Op::ElementScores) && gpu_has(Op::GroupScores) && gpu_has(Op::Energies));
        assert!(!gpu_has(Op::AbsmeanEncode(GgmlType::Q8_0)));
        assert_eq!(describe().len(), table::GPU_CODECS.len());
    }
}
