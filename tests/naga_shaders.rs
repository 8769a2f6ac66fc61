//! Every shader under shaders/ (with common.wgsl prepended, as the runtime does) must parse,
//! validate, and translate to MSL and SPIR-V with naga: the Metal and Vulkan back ends.

use naga::back::{msl, pipeline_constants, spv};
use naga::valid::{Capabilities, ValidationFlags, Validator};
use std::path::Path;

/// Translates entry point `ep` of `module` with `constants` to MSL and SPIR-V.
fn translate(
    module: &naga::Module,
    info: &naga::valid::ModuleInfo,
    label: &str,
    ep: &str,
    constants: &naga::back::PipelineConstants,
) -> Result<(), String> {
    let (m, i) = pipeline_constants::process_overrides(
        module,
        info,
        Some((naga::ShaderStage::Compute, ep)),
        constants,
    )
    .map_err(|e| format!("{label}: overrides: {e}"))?;
    let opts = msl::Options {
        lang_version: (2, 1),
        ..Default::default()
    };
    let popts = msl::PipelineOptions {
        entry_point: Some((naga::ShaderStage::Compute, ep.to_string())),
        ..Default::default()
    };
    msl::write_string(&m, &i, &opts, &popts)
        .map_err(|e| format!("{label}: MSL translation error: {e:?}"))?;
    let spv_popts = spv::PipelineOptions {
        shader_stage: naga::ShaderStage::Compute,
        entry_point: ep.to_string(),
    };
    spv::write_vec(&m, &i, &spv::Options::default(), Some(&spv_popts))
        .map_err(|e| format!("{label}: SPIR-V translation error: {e:?}"))?;
    Ok(())
}

fn check(name: &str, body: &str) -> Result<usize, String> {
    let src = gpuq::gpu::wgsl::compose(body);
    let module = naga::front::wgsl::parse_str(&src)
        .map_err(|e| format!("{name}: WGSL parse error:\n{}", e.emit_to_string(&src)))?;
    let info = Validator::new(ValidationFlags::all(), Capabilities::default())
        .validate(&module)
        .map_err(|e| format!("{name}: validation error:\n{}", e.emit_to_string(&src)))?;
    let entries: Vec<String> = module.entry_points.iter().map(|e| e.name.clone()).collect();
    if entries.is_empty() && name != "common.wgsl" {
        return Err(format!("{name}: no entry points"));
    }
    for ep in &entries {
        // Resolve `override` constants to their defaults, as wgpu does when it builds a pipeline.
        translate(
            &module,
            &info,
            &format!("{name}:{ep}"),
            ep,
            &naga::back::PipelineConstants::default(),
        )?;
    }
    Ok(entries.len())
}

#[test]
fn every_shader_validates_and_translates_to_msl_and_spirv() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("shaders");
    let mut found = 0;
    let mut failures = Vec::new();
    let mut paths: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "wgsl"))
        .collect();
    paths.sort();
    for path in paths {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let body = if name == "common.wgsl" {
            String::new() // common.wgsl alone: compose() already holds it
        } else {
            std::fs::read_to_string(&path).unwrap()
        };
        found += 1;
        if let Err(e) = check(&name, &body) {
            failures.push(e);
        }
    }
    assert!(
        found >= 2,
        "expected common.wgsl and at least one shader in {dir:?}"
    );
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn runtime_shader_table_matches_the_files() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("shaders");
    for s in gpuq::gpu::wgsl::SHADERS {
        let on_disk = std::fs::read_to_string(dir.join(s.name)).unwrap();
        assert_eq!(on_disk, s.body, "{} differs from the embedded text", s.name);
        check(s.name, s.body).unwrap_or_else(|e| panic!("{e}"));
    }
    let common = std::fs::read_to_string(dir.join("common.wgsl")).unwrap();
    assert_eq!(common, gpuq::gpu::wgsl::COMMON);
}

/// Every pipeline the runtime builds from the codec table: its entry point specialised with the
/// row's variant constants (TY, BPG, BB, WG) must translate to MSL and SPIR-V.
#[test]
fn every_codec_variant_translates_with_its_constants() {
    let mut built = 0;
    let mut failures = Vec::new();
    for c in gpuq::gpu::table::GPU_CODECS {
        let src = gpuq::gpu::wgsl::compose(c.shader.body);
        let module = naga::front::wgsl::parse_str(&src).unwrap();
        let info = Validator::new(ValidationFlags::all(), Capabilities::default())
            .validate(&module)
            .unwrap();
        for (entry, variant) in [
            (c.encode, c.encode_variant()),
            (c.decode, c.decode_variant()),
        ] {
            let Some(entry) = entry else { continue };
            let constants: naga::back::PipelineConstants = variant
                .constants(64)
                .iter()
                .map(|(k, v)| (k.to_string(), *v))
                .collect();
            let label = format!("{}:{entry}[{}]", c.shader.name, c.ty);
            match translate(&module, &info, &label, entry, &constants) {
                Ok(()) => built += 1,
                Err(e) => failures.push(e),
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    let want: usize = gpuq::gpu::table::GPU_CODECS
        .iter()
        .map(|c| c.encode.is_some() as usize + c.decode.is_some() as usize)
        .sum();
    assert_eq!(built, want, "variants translated");
    assert!(
        built > gpuq::gpu::table::GPU_CODECS.len(),
        "{built} variants"
    );
}
