//! The WGSL sources gpuq compiles, embedded with `include_str!`, and the one rule that turns a
//! shader file into a module: `common.wgsl` is prepended to it. Pure text: available without
//! the `gpu` feature, so `tests/naga_shaders.rs` checks exactly what the runtime compiles.

/// A shader file under `shaders/`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ShaderFile {
    /// File name under `shaders/`, e.g. `float.wgsl`; also the first part of pipeline labels.
    pub name: &'static str,
    /// The file's text (without the common helpers).
    pub body: &'static str,
}

/// Helpers shared by every shader (f16/bf16 bit conversions, `CodecParams`, `WG`).
pub const COMMON: &str = include_str!("../../shaders/common.wgsl");

/// F16 / BF16 encode and decode.
pub const FLOAT: ShaderFile = ShaderFile {
    name: "float.wgsl",
    body: include_str!("../../shaders/float.wgsl"),
};

/// Weight statistics (`gpuq stats`).
pub const STATS: ShaderFile = ShaderFile {
    name: "stats.wgsl",
    body: include_str!("../../shaders/stats.wgsl"),
};

/// TQ1_0 / TQ2_0 encode and decode, BitNet absmean block sums and scaled encoders.
pub const TERNARY: ShaderFile = ShaderFile {
    name: "ternary.wgsl",
    body: include_str!("../../shaders/ternary.wgsl"),
};

/// Q4_0, Q4_1, Q5_0, Q5_1, Q8_0 encode and decode.
pub const LEGACY: ShaderFile = ShaderFile {
    name: "legacy.wgsl",
    body: include_str!("../../shaders/legacy.wgsl"),
};

/// Q2_K..Q6_K decode, and the k-quant encoders.
pub const KQUANTS: ShaderFile = ShaderFile {
    name: "kquants.wgsl",
    body: include_str!("../../shaders/kquants.wgsl"),
};

/// IQ4_NL, IQ4_XS encode and decode.
pub const NONLINEAR: ShaderFile = ShaderFile {
    name: "nonlinear.wgsl",
    body: include_str!("../../shaders/nonlinear.wgsl"),
};

/// MXFP4, NVFP4 encode and decode.
pub const FP4: ShaderFile = ShaderFile {
    name: "fp4.wgsl",
    body: include_str!("../../shaders/fp4.wgsl"),
};

/// Q1_0, Q2_0 encode and decode.
pub const Q1_0: ShaderFile = ShaderFile {
    name: "q1_0.wgsl",
    body: include_str!("../../shaders/q1_0.wgsl"),
};

/// IQ2_XXS, IQ2_XS, IQ2_S, IQ3_XXS, IQ3_S, IQ1_S, IQ1_M decode.
pub const IQUANTS: ShaderFile = ShaderFile {
    name: "iquants.wgsl",
    body: include_str!("../../shaders/iquants.wgsl"),
};

/// Equilibrium pruning's score pass: participation per weight and per group, energies.
pub const PRUNE: ShaderFile = ShaderFile {
    name: "prune.wgsl",
    body: include_str!("../../shaders/prune.wgsl"),
};

/// Every shader file the runtime knows.
pub const SHADERS: &[ShaderFile] = &[
    FLOAT, LEGACY, KQUANTS, STATS, TERNARY, NONLINEAR, FP4, Q1_0, IQUANTS, PRUNE,
];

/// The module source of a shader: `common.wgsl`, then the shader's own text.
pub fn compose(body: &str) -> String {
    let mut s = String::with_capacity(COMMON.len() + body.len() + 64);
    s.push_str(COMMON);
    s.push_str("\n// ---- end of common.wgsl ----\n");
    s.push_str(body);
    s
}
