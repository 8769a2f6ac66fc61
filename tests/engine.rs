//! The Engine API: backend choice, CPU path without wgpu, GPU fallback to the CPU codec for
//! types without a kernel, typed errors for bad shapes.

mod common;

use common::{Dist, rng, sample};
use gpuq::{Backend, Engine, Error, GgmlType, codec};

#[test]
fn cpu_backend_round_trips_and_equals_the_codec_table() {
    let e = Engine::new(Backend::Cpu).unwrap();
    assert_eq!(e.backend(), Backend::Cpu);
    assert!(e.describe().contains("cpu"), "{}", e.describe());
    let mut r = rng(7);
    let x = sample(Dist::HeavyTailed, 10 * 257, &mut r);
    for ty in [GgmlType::F32, GgmlType::F16, GgmlType::BF16] {
        let enc = e.encode(ty, &x, 257, None).unwrap();
        let mut want = vec![0u8; enc.len()];
        codec::encode_rows(ty, &x, 257, None, &mut want).unwrap();
        assert_eq!(enc, want, "{ty}");
        let dec = e.decode(ty, &enc, 257).unwrap();
        assert_eq!(dec.len(), x.len());
        if ty == GgmlType::F32 {
            assert_eq!(dec, x);
        }
    }
}

#[test]
fn bad_shapes_are_typed_errors() {
    let e = Engine::new(Backend::Cpu).unwrap();
    let x = vec![1.0f32; 100];
    assert!(matches!(
        e.encode(GgmlType::F16, &x, 30, None),
        Err(Error::Codec(_))
    ));
    assert!(matches!(
        e.encode(GgmlType::F16, &x, 0, None),
        Err(Error::Codec(_))
    ));
    assert!(matches!(
        e.decode(GgmlType::F16, &[0u8; 7], 2),
        Err(Error::Codec(_))
    ));
    let mut small = vec![0u8; 10];
    assert!(
        e.encode_into(GgmlType::F16, &x, 10, None, &mut small)
            .is_err()
    );
}

#[test]
fn auto_picks_gpu_only_for_a_real_gpu() {
    let e = Engine::new(Backend::Auto).unwrap();
    eprintln!("{}", e.describe());
    assert_ne!(e.backend(), Backend::Auto);
    #[cfg(feature = "gpu")]
    match gpuq::gpu::context::GpuContext::shared() {
        Ok(ctx) if ctx.is_cpu_adapter() => {
            assert_eq!(e.backend(), Backend::Cpu);
            assert!(e.describe().contains("software"), "{}", e.describe());
        }
        Ok(_) => assert_eq!(e.backend(), Backend::Gpu),
        Err(_) => assert_eq!(e.backend(), Backend::Cpu),
    }
    #[cfg(not(feature = "gpu"))]
    {
        assert_eq!(e.backend(), Backend::Cpu);
        assert!(matches!(Engine::new(Backend::Gpu), Err(Error::Gpu(_))));
    }
}

#[cfg(feature = "gpu")]
#[test]
fn gpu_backend_falls_back_to_cpu_codec_without_a_kernel() {
    let e = match Engine::new(Backend::Gpu) {
        Ok(e) => e,
        Err(e) if std::env::var("GPUQ_TEST_ALLOW_NO_GPU").as_deref() == Ok("1") => {
            eprintln!("skipping: {e}");
            return;
        }
        Err(e) => panic!("{e} (set GPUQ_TEST_ALLOW_NO_GPU=1 to skip)"),
    };
    assert_eq!(e.backend(), Backend::Gpu);
    assert!(e.describe().contains("gpu"), "{}", e.describe());
    // F32 has no GPU kernel: the CPU codec runs and gives its bytes.
    assert!(!e.encodes_on_gpu(GgmlType::F32));
    let mut r = rng(8);
    let x = sample(Dist::Normal, 4 * 96, &mut r);
    let enc = e.encode(GgmlType::F32, &x, 96, None).unwrap();
    assert_eq!(e.decode(GgmlType::F32, &enc, 96).unwrap(), x);
    // F16 has one: same bytes as the CPU path, through the GPU.
    assert!(e.encodes_on_gpu(GgmlType::F16));
    let cpu = Engine::new(Backend::Cpu).unwrap();
    let w = vec![1.0f32; 96];
    assert_eq!(
        e.encode(GgmlType::F16, &x, 96, Some(&w)).unwrap(),
        cpu.encode(GgmlType::F16, &x, 96, Some(&w)).unwrap()
    );
    // Weights of the wrong length are a typed error on both paths.
    assert!(e.encode(GgmlType::F16, &x, 96, Some(&w[..10])).is_err());
    assert!(cpu.encode(GgmlType::F16, &x, 96, Some(&w[..10])).is_err());
    // A type with neither kernel nor CPU encoder is a typed error, not a panic.
    if !codec::can_encode(GgmlType::IQ1_M) {
        assert!(
            e.encode(GgmlType::IQ1_M, &vec![0.0; 256], 256, None)
                .is_err()
        );
    }
    assert_eq!(
        e.encode(GgmlType::F16, &[], 96, None).unwrap(),
        Vec::<u8>::new()
    );
}
