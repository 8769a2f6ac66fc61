//! shaders/legacy.wgsl parses and validates with naga (after common.wgsl, as the runtime
//! composes it), translates to MSL and SPIR-V, and has every entry point the codec table needs.

use std::path::Path;

/// The family entry points and the legacy types they are specialised for (pipeline constants
/// TY, BPG, BB as gpu::table builds them).
const ENTRY_POINTS: [&str; 2] = ["encode", "decode"];
const TYPES: [gpuq::GgmlType; 5] = [
    gpuq::GgmlType::Q4_0,
    gpuq::GgmlType::Q4_1,
    gpuq::GgmlType::Q5_0,
    gpuq::GgmlType::Q5_1,
    gpuq::GgmlType::Q8_0,
];

#[test]
fn legacy_wgsl_validates_and_translates() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("shaders");
    let Ok(common) = std::fs::read_to_string(root.join("common.wgsl")) else {
        eprintln!("SKIPPED: shaders/common.wgsl (from the gpu branch) is not here yet");
        return;
    };
    let body = std::fs::read_to_string(root.join("legacy.wgsl")).unwrap();
    let src = format!("{common}\n{body}");
    let module = naga::front::wgsl::parse_str(&src).unwrap_or_else(|e| {
        panic!("legacy.wgsl: {}", e.emit_to_string(&src));
    });
    let info = naga::valid::Validator::new(
        naga::valid::ValidationFlags::all(),
        naga::valid::Capabilities::empty(),
    )
    .validate(&module)
    .unwrap_or_else(|e| panic!("legacy.wgsl: {}", e.emit_to_string(&src)));
    for ep in ENTRY_POINTS {
        assert!(
            module.entry_points.iter().any(|e| e.name == ep),
            "entry point {ep} missing"
        );
    }
    let mut translated = 0;
    for ty in TYPES {
        let codec = gpuq::gpu::table::gpu_codec(ty).expect("a legacy type in the GPU table");
        assert_eq!(codec.shader.name, "legacy.wgsl", "{ty}");
        for (ep, variant) in [
            ("encode", codec.encode_variant()),
            ("decode", codec.decode_variant()),
        ] {
            // resolve the `override` constants (WG, TY, BPG, BB) as wgpu does for the pipeline
            let constants: naga::back::PipelineConstants = variant
                .constants(64)
                .iter()
                .map(|(k, v)| (k.to_string(), *v))
                .collect();
            let (m, i) = naga::back::pipeline_constants::process_overrides(
                &module,
                &info,
                Some((naga::ShaderStage::Compute, ep)),
                &constants,
            )
            .unwrap();
            let opts = naga::back::msl::Options {
                lang_version: (2, 1),
                ..Default::default()
            };
            let popts = naga::back::msl::PipelineOptions {
                entry_point: Some((naga::ShaderStage::Compute, ep.to_string())),
                ..Default::default()
            };
            naga::back::msl::write_string(&m, &i, &opts, &popts)
                .unwrap_or_else(|e| panic!("{ep} {ty}: MSL: {e:?}"));
            let spv_popts = naga::back::spv::PipelineOptions {
                shader_stage: naga::ShaderStage::Compute,
                entry_point: ep.to_string(),
            };
            naga::back::spv::write_vec(
                &m,
                &i,
                &naga::back::spv::Options::default(),
                Some(&spv_popts),
            )
            .unwrap_or_else(|e| panic!("{ep} {ty}: SPIR-V: {e:?}"));
            translated += 1;
        }
    }
    assert_eq!(translated, 2 * TYPES.len());
}

// The Rust twin of common.wgsl's integer IEEE arithmetic (tests/common/soft_float.rs), checked
// against the CPU's IEEE `*` and `/` on random bit patterns and on the operands the encoders
// feed it.
#[path = "common/soft_float.rs"]
mod soft;

#[test]
fn wgsl_integer_mul_and_div_equal_ieee() {
    use rand::{Rng, SeedableRng};
    let mut r = rand::rngs::StdRng::seed_from_u64(0x50f7);
    let same = |x: f32, y: u32| {
        let b = x.to_bits();
        b == y || (x.is_nan() && f32::from_bits(y).is_nan())
    };
    let mut n = 0;
    for k in 0..2_000_000u32 {
        // random bit patterns (all exponents, subnormals, inf, NaN) and encoder-like operands
        let (a, b) = if k % 2 == 0 {
            (r.random::<u32>(), r.random::<u32>())
        } else {
            let x: f32 = r.random_range(-3.0f32..3.0) * 2f32.powi(r.random_range(-30..30));
            let d: f32 = [8.0f32, -8.0, 15.0, 16.0, -16.0, 31.0, 127.0][k as usize % 7];
            (x.to_bits(), (x / d).to_bits())
        };
        let (fa, fb) = (f32::from_bits(a), f32::from_bits(b));
        assert!(same(fa * fb, soft::mul(a, b)), "mul {fa:e} {fb:e}");
        assert!(same(fa / fb, soft::div(a, b)), "div {fa:e} {fb:e}");
        assert!(same(1.0 / fb, soft::div(1f32.to_bits(), b)), "1/{fb:e}");
        n += 1;
    }
    eprintln!("{n} operand pairs: integer mul/div equal IEEE");
}
