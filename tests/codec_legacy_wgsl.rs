//! shaders/legacy.wgsl parses and validates with naga (after common.wgsl, as the runtime
//! composes it), translates to MSL and SPIR-V, and has every entry point the codec table needs.

use std::path::Path;

const ENTRY_POINTS: [&str; 10] = [
    "encode_q4_0",
    "encode_q4_1",
    "encode_q5_0",
    "encode_q5_1",
    "encode_q8_0",
    "decode_q4_0",
    "decode_q4_1",
    "decode_q5_0",
    "decode_q5_1",
    "decode_q8_0",
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
    for ep in ENTRY_POINTS {
        // resolve `override` constants (WG) as wgpu does when it builds a pipeline
        let (m, i) = naga::back::pipeline_constants::process_overrides(
            &module,
            &info,
            Some((naga::ShaderStage::Compute, ep)),
            &naga::back::PipelineConstants::default(),
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
            .unwrap_or_else(|e| panic!("{ep}: MSL: {e:?}"));
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
        .unwrap_or_else(|e| panic!("{ep}: SPIR-V: {e:?}"));
    }
}

// A line-by-line Rust transliteration of common.wgsl's integer IEEE arithmetic (`round_pack`,
// `unpack_sig`, `soft_mul`, `soft_div`; the WGSL writes the four digit steps of the division
// out instead of looping), checked against the CPU's IEEE `*` and `/` on random
// bit patterns and on the operands the encoders feed it. Keep the two in step.
mod soft {
    fn round_pack(sign: u32, e_in: i32, sig_in: u32) -> u32 {
        let (mut e, mut sig) = (e_in, sig_in);
        if e >= 255 {
            return sign | 0x7f80_0000;
        }
        if e <= 0 {
            let sh = (1 - e) as u32;
            if sh >= 27 {
                sig = (sig != 0) as u32;
            } else {
                let lost = sig & ((1u32 << sh) - 1);
                sig = (sig >> sh) | (lost != 0) as u32;
            }
            e = 1;
        }
        let low = sig & 7;
        let mut m = sig >> 3;
        if low > 4 || (low == 4 && (m & 1) == 1) {
            m += 1;
        }
        let bits = (((e - 1) as u32) << 23) + m;
        if bits >= 0x7f80_0000 {
            return sign | 0x7f80_0000;
        }
        sign | bits
    }

    fn unpack_sig(a: u32) -> (u32, i32) {
        let ef = (a >> 23) as i32;
        let m = a & 0x7f_ffff;
        if ef == 0 {
            let sh = m.leading_zeros() - 8;
            return (m << sh, 1 - sh as i32);
        }
        (m | 0x80_0000, ef)
    }

    fn is_nan(a: u32) -> bool {
        (a & 0x7fff_ffff) > 0x7f80_0000
    }

    pub fn mul(a: u32, b: u32) -> u32 {
        let sign = (a ^ b) & 0x8000_0000;
        let (aa, ab) = (a & 0x7fff_ffff, b & 0x7fff_ffff);
        if is_nan(a) {
            return a | 0x40_0000;
        }
        if is_nan(b) {
            return b | 0x40_0000;
        }
        if aa == 0x7f80_0000 || ab == 0x7f80_0000 {
            if aa == 0 || ab == 0 {
                return 0x7fc0_0000;
            }
            return sign | 0x7f80_0000;
        }
        if aa == 0 || ab == 0 {
            return sign;
        }
        let (ma, ea) = unpack_sig(aa);
        let (mb, eb) = unpack_sig(ab);
        let (a1, a0, b1, b0) = (ma >> 12, ma & 0xfff, mb >> 12, mb & 0xfff);
        let mid = a1 * b0 + a0 * b1;
        let lo_full = a0 * b0 + ((mid & 0xfff) << 12);
        let lo = lo_full & 0xff_ffff;
        let hi = a1 * b1 + (mid >> 12) + (lo_full >> 24);
        let s: u32 = if hi >= 0x80_0000 { 21 } else { 20 };
        let sticky = ((lo & ((1u32 << s) - 1)) != 0) as u32;
        let sig = (hi << (24 - s)) | (lo >> s) | sticky;
        round_pack(sign, ea + eb - 147 + s as i32, sig)
    }

    pub fn div(a: u32, b: u32) -> u32 {
        let sign = (a ^ b) & 0x8000_0000;
        let (aa, ab) = (a & 0x7fff_ffff, b & 0x7fff_ffff);
        if is_nan(a) {
            return a | 0x40_0000;
        }
        if is_nan(b) {
            return b | 0x40_0000;
        }
        if aa == 0x7f80_0000 {
            if ab == 0x7f80_0000 {
                return 0x7fc0_0000;
            }
            return sign | 0x7f80_0000;
        }
        if ab == 0x7f80_0000 {
            return sign;
        }
        if ab == 0 {
            if aa == 0 {
                return 0x7fc0_0000;
            }
            return sign | 0x7f80_0000;
        }
        if aa == 0 {
            return sign;
        }
        let (ma, ea) = unpack_sig(aa);
        let (mb, eb) = unpack_sig(ab);
        let n: u32 = if ma < mb { 27 } else { 26 };
        let mut q = ma / mb;
        let mut rem = ma % mb;
        for k in [8u32, 8, 8, n - 24] {
            let t = rem << k;
            q = (q << k) | (t / mb);
            rem = t % mb;
        }
        let sig = q | (rem != 0) as u32;
        round_pack(sign, ea - eb - n as i32 + 153, sig)
    }
}

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
