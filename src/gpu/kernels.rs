//! Compute pipelines, built on first use and cached by [`KernelKey`]. The key's `Display` is
//! also the wgpu label of the pipeline, so a validation error names the kernel.

use super::GpuError;
use super::context::GpuContext;
use super::table::Variant;
use super::wgsl::{ShaderFile, compose};
use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};

/// The bind group layout a kernel is compiled against.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Layout {
    /// Every kernel (codecs, reductions, statistics; see [`super::table`]): 0 uniform `CodecParams`, 1 read-only storage
    /// `src: array<u32>`, 2 read-write storage `dst: array<u32>`, 3 read-only storage
    /// `weights: array<f32>` (a dummy when the call has no importance weights).
    Codec,
}

/// Identifies one pipeline: shader file, entry point, workgroup size (the `WG` override of
/// common.wgsl), the variant constants (`TY`, `BPG`, `BB`), bind group layout.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct KernelKey {
    pub shader: ShaderFile,
    pub entry: &'static str,
    pub workgroup_size: u32,
    pub variant: Variant,
    pub layout: Layout,
}

impl fmt::Display for KernelKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let v = &self.variant;
        let ty = crate::ggml_type::GgmlType::from_id(v.type_id)
            .map(|t| t.name())
            .unwrap_or("-");
        write!(
            f,
            "{}:{}[{ty} bpg={} bb={} wg={}]",
            self.shader.name,
            self.entry,
            v.blocks_per_invocation,
            v.block_bytes,
            self.workgroup_size
        )
    }
}

/// The pipeline cache of one device.
pub struct KernelCache {
    ctx: Arc<GpuContext>,
    layouts: HashMap<Layout, (wgpu::BindGroupLayout, wgpu::PipelineLayout)>,
    modules: Mutex<HashMap<&'static str, wgpu::ShaderModule>>,
    pipelines: Mutex<HashMap<KernelKey, wgpu::ComputePipeline>>,
}

fn storage(binding: u32, read_only: bool) -> wgpu::BindGroupLayoutEntry {
    wgpu::BindGroupLayoutEntry {
        binding,
        visibility: wgpu::ShaderStages::COMPUTE,
        ty: wgpu::BindingType::Buffer {
            ty: wgpu::BufferBindingType::Storage { read_only },
            has_dynamic_offset: false,
            min_binding_size: None,
        },
        count: None,
    }
}

impl KernelCache {
    pub fn new(ctx: Arc<GpuContext>) -> Self {
        let d = &ctx.device;
        let codec_bgl = d.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
            label: Some("gpuq codec bind group layout"),
            entries: &[
                wgpu::BindGroupLayoutEntry {
                    binding: 0,
                    visibility: wgpu::ShaderStages::COMPUTE,
                    ty: wgpu::BindingType::Buffer {
                        ty: wgpu::BufferBindingType::Uniform,
                        has_dynamic_offset: false,
                        min_binding_size: None,
                    },
                    count: None,
                },
                storage(1, true),
                storage(2, false),
                storage(3, true),
            ],
        });
        let codec_pl = d.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
            label: Some("gpuq codec pipeline layout"),
            bind_group_layouts: &[Some(&codec_bgl)],
            immediate_size: 0,
        });
        let mut layouts = HashMap::new();
        layouts.insert(Layout::Codec, (codec_bgl, codec_pl));
        KernelCache {
            ctx,
            layouts,
            modules: Mutex::new(HashMap::new()),
            pipelines: Mutex::new(HashMap::new()),
        }
    }

    pub fn bind_group_layout(&self, layout: Layout) -> &wgpu::BindGroupLayout {
        &self.layouts[&layout].0
    }

    /// Number of pipelines built so far.
    pub fn len(&self) -> usize {
        self.pipelines.lock().map(|p| p.len()).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The pipeline for `key`, compiling it (and its shader module) on first use. Compilation
    /// errors come back as [`GpuError::Pipeline`] naming the key.
    pub fn pipeline(&self, key: KernelKey) -> Result<wgpu::ComputePipeline, GpuError> {
        let mut pipelines = self.pipelines.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(p) = pipelines.get(&key) {
            return Ok(p.clone());
        }
        let d = &self.ctx.device;
        let label = key.to_string();
        let validation = d.push_error_scope(wgpu::ErrorFilter::Validation);
        let internal = d.push_error_scope(wgpu::ErrorFilter::Internal);
        let module = {
            let mut modules = self.modules.lock().unwrap_or_else(|p| p.into_inner());
            modules
                .entry(key.shader.name)
                .or_insert_with(|| {
                    d.create_shader_module(wgpu::ShaderModuleDescriptor {
                        label: Some(key.shader.name),
                        source: wgpu::ShaderSource::Wgsl(compose(key.shader.body).into()),
                    })
                })
                .clone()
        };
        let constants = key.variant.constants(key.workgroup_size);
        let pipeline = d.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some(&label),
            layout: Some(&self.layouts[&key.layout].1),
            module: &module,
            entry_point: Some(key.entry),
            compilation_options: wgpu::PipelineCompilationOptions {
                constants: &constants,
                zero_initialize_workgroup_memory: false,
            },
            cache: None,
        });
        let errors: Vec<String> = [internal.pop(), validation.pop()]
            .into_iter()
            .filter_map(pollster::block_on)
            .map(|e| e.to_string())
            .collect();
        if !errors.is_empty() {
            // A broken module would fail again for every entry point: forget it.
            if let Ok(mut m) = self.modules.lock() {
                m.remove(key.shader.name);
            }
            return Err(GpuError::Pipeline {
                label,
                message: errors.join("; "),
            });
        }
        pipelines.insert(key, pipeline.clone());
        Ok(pipeline)
    }
}
