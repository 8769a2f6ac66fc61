//! The wgpu instance, adapter, device and queue, built once per process.
//!
//! The adapter is asked for with high performance first, then low power, then the fallback
//! (software) adapter. The device is created with the adapter's own limits (not the downlevel
//! defaults: lavapipe allows 128 MiB storage bindings, discrete GPUs more), and no optional
//! features: every shader is portable WGSL. Device loss and uncaptured wgpu errors are
//! recorded by callbacks and returned as [`GpuError`]s by [`GpuContext::check`]; every wait on
//! the device has a timeout.

use super::{GpuError, NO_ADAPTER_HINT};
use std::sync::{Arc, Mutex, OnceLock, mpsc};
use std::time::Duration;

/// Seconds to wait for adapter and device creation (env `GPUQ_GPU_INIT_TIMEOUT`).
const INIT_TIMEOUT_S: u64 = 60;
/// Seconds to wait for one submission or buffer map (env `GPUQ_GPU_TIMEOUT`).
const WAIT_TIMEOUT_S: u64 = 300;

fn env_secs(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default)
}

/// The wgpu backends to look at: `GPUQ_BACKEND=vulkan|metal|dx12|gl` (comma-separated list
/// allowed) narrows them; unset means Vulkan, Metal and DX12.
pub fn backends_from_env() -> Result<wgpu::Backends, GpuError> {
    let Ok(v) = std::env::var("GPUQ_BACKEND") else {
        return Ok(wgpu::Backends::PRIMARY);
    };
    if v.trim().is_empty() {
        return Ok(wgpu::Backends::PRIMARY);
    }
    let mut b = wgpu::Backends::empty();
    for name in v.split(',') {
        b |= match name.trim().to_ascii_lowercase().as_str() {
            "vulkan" | "vk" => wgpu::Backends::VULKAN,
            "metal" | "mtl" => wgpu::Backends::METAL,
            "dx12" | "d3d12" => wgpu::Backends::DX12,
            "gl" | "gles" | "opengl" => wgpu::Backends::GL,
            _ => return Err(GpuError::BadBackendEnv(v.clone())),
        };
    }
    Ok(b)
}

/// What callbacks recorded since the last [`GpuContext::check`].
#[derive(Default)]
struct Incidents {
    lost: Option<String>,
    errors: Vec<String>,
}

/// One device and everything needed to use it.
pub struct GpuContext {
    pub instance: wgpu::Instance,
    pub adapter: wgpu::Adapter,
    pub device: wgpu::Device,
    pub queue: wgpu::Queue,
    pub info: wgpu::AdapterInfo,
    /// The limits the device was created with (= the adapter's).
    pub limits: wgpu::Limits,
    /// The adapter's features (the device enables none of them).
    pub adapter_features: wgpu::Features,
    pub backends: wgpu::Backends,
    incidents: Arc<Mutex<Incidents>>,
    wait_timeout: Duration,
}

impl std::fmt::Debug for GpuContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GpuContext")
            .field("adapter", &self.info.name)
            .field("backend", &self.info.backend)
            .field("device_type", &self.info.device_type)
            .finish_non_exhaustive()
    }
}

static SHARED: OnceLock<Result<Arc<GpuContext>, GpuError>> = OnceLock::new();

impl GpuContext {
    /// The process-wide context, created on first use. A failure is remembered too, so a
    /// missing adapter is looked for only once.
    pub fn shared() -> Result<Arc<GpuContext>, GpuError> {
        SHARED
            .get_or_init(|| GpuContext::new().map(Arc::new))
            .clone()
    }

    /// Creates a new context. Adapter discovery and device creation run on a helper thread
    /// so that a driver that hangs becomes a [`GpuError::Timeout`] instead of a hung process.
    pub fn new() -> Result<GpuContext, GpuError> {
        let backends = backends_from_env()?;
        let secs = env_secs("GPUQ_GPU_INIT_TIMEOUT", INIT_TIMEOUT_S);
        let (tx, rx) = mpsc::channel();
        std::thread::Builder::new()
            .name("gpuq-gpu-init".into())
            .spawn(move || {
                let _ = tx.send(Self::build(backends));
            })
            .map_err(|e| GpuError::Wgpu {
                context: "starting the GPU init thread".into(),
                message: e.to_string(),
            })?;
        match rx.recv_timeout(Duration::from_secs(secs)) {
            Ok(r) => r,
            Err(mpsc::RecvTimeoutError::Timeout) => Err(GpuError::Timeout {
                what: "looking for a GPU adapter and creating a device".into(),
                secs,
            }),
            Err(mpsc::RecvTimeoutError::Disconnected) => Err(GpuError::Wgpu {
                context: "creating the GPU device".into(),
                message: "the init thread panicked (a driver crash?)".into(),
            }),
        }
    }

    fn build(backends: wgpu::Backends) -> Result<GpuContext, GpuError> {
        let mut desc = wgpu::InstanceDescriptor::new_without_display_handle();
        desc.backends = backends;
        // Validation layers only when asked for (WGPU_VALIDATION / WGPU_DEBUG).
        desc.flags = wgpu::InstanceFlags::empty().with_env();
        let instance = wgpu::Instance::new(desc);

        let mut tried = Vec::new();
        let mut adapter = None;
        for (power, fallback) in [
            (wgpu::PowerPreference::HighPerformance, false),
            (wgpu::PowerPreference::LowPower, false),
            (wgpu::PowerPreference::None, true),
        ] {
            let opts = wgpu::RequestAdapterOptions {
                power_preference: power,
                force_fallback_adapter: fallback,
                compatible_surface: None,
                ..Default::default()
            };
            match pollster::block_on(instance.request_adapter(&opts)) {
                Ok(a) => {
                    adapter = Some(a);
                    break;
                }
                Err(e) => {
                    let e = e.to_string();
                    if !tried.contains(&e) {
                        tried.push(e);
                    }
                }
            }
        }
        let Some(adapter) = adapter else {
            return Err(GpuError::NoAdapter {
                backends: format!("{backends:?}"),
                detail: if tried.is_empty() {
                    String::new()
                } else {
                    format!("; {}", tried.join("; "))
                },
                hint: NO_ADAPTER_HINT,
            });
        };

        let info = adapter.get_info();
        let limits = adapter.limits();
        let adapter_features = adapter.features();
        let desc = wgpu::DeviceDescriptor {
            label: Some("gpuq"),
            required_features: wgpu::Features::empty(),
            required_limits: limits.clone(),
            memory_hints: wgpu::MemoryHints::Performance,
            ..Default::default()
        };
        let (device, queue) = pollster::block_on(adapter.request_device(&desc)).map_err(|e| {
            GpuError::RequestDevice {
                adapter: info.name.clone(),
                reason: e.to_string(),
            }
        })?;

        let incidents = Arc::new(Mutex::new(Incidents::default()));
        let inc = incidents.clone();
        device.set_device_lost_callback(move |reason, msg| {
            if let Ok(mut i) = inc.lock() {
                i.lost = Some(format!("{reason:?}: {msg}"));
            }
        });
        let inc = incidents.clone();
        device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
            if let Ok(mut i) = inc.lock() {
                i.errors.push(e.to_string());
            }
        }));

        let limits = device.limits();
        Ok(GpuContext {
            instance,
            adapter,
            device,
            queue,
            limits,
            info,
            adapter_features,
            backends,
            incidents,
            wait_timeout: Duration::from_secs(env_secs("GPUQ_GPU_TIMEOUT", WAIT_TIMEOUT_S)),
        })
    }

    /// True for a software adapter (lavapipe "llvmpipe", WARP, SwiftShader).
    pub fn is_cpu_adapter(&self) -> bool {
        self.info.device_type == wgpu::DeviceType::Cpu
    }

    /// Returns the first device loss or uncaught wgpu error recorded since the last call.
    pub fn check(&self, context: &str) -> Result<(), GpuError> {
        let mut i = match self.incidents.lock() {
            Ok(i) => i,
            Err(p) => p.into_inner(),
        };
        if let Some(l) = &i.lost {
            return Err(GpuError::DeviceLost(l.clone()));
        }
        if !i.errors.is_empty() {
            let message = i.errors.join("; ");
            i.errors.clear();
            return Err(GpuError::Wgpu {
                context: context.to_string(),
                message,
            });
        }
        Ok(())
    }

    /// Blocks until all submitted work is done and map callbacks have run, with a timeout.
    pub fn wait(&self, what: &str) -> Result<(), GpuError> {
        let r = self.device.poll(wgpu::PollType::Wait {
            submission_index: None,
            timeout: Some(self.wait_timeout),
        });
        self.poll_result(r, what)
    }

    /// Blocks until `submission` is done (and map callbacks have run), with a timeout; later
    /// submissions may still be running.
    pub fn wait_for(&self, submission: wgpu::SubmissionIndex, what: &str) -> Result<(), GpuError> {
        let r = self.device.poll(wgpu::PollType::Wait {
            submission_index: Some(submission),
            timeout: Some(self.wait_timeout),
        });
        self.poll_result(r, what)
    }

    fn poll_result(
        &self,
        r: Result<wgpu::PollStatus, wgpu::PollError>,
        what: &str,
    ) -> Result<(), GpuError> {
        match r {
            Ok(_) => self.check(what),
            Err(wgpu::PollError::Timeout) => {
                self.check(what)?;
                Err(GpuError::Timeout {
                    what: what.to_string(),
                    secs: self.wait_timeout.as_secs(),
                })
            }
            Err(e) => {
                self.check(what)?;
                Err(GpuError::Wgpu {
                    context: what.to_string(),
                    message: e.to_string(),
                })
            }
        }
    }

    /// How long one wait on the device may take (env `GPUQ_GPU_TIMEOUT`, seconds).
    pub fn wait_timeout(&self) -> Duration {
        self.wait_timeout
    }

    /// Largest size of one storage binding this device allows (and one buffer).
    pub fn max_binding(&self) -> u64 {
        self.limits
            .max_storage_buffer_binding_size
            .min(self.limits.max_buffer_size)
    }

    /// Several lines describing the adapter: name, backend, type, driver, limits, features.
    pub fn report(&self) -> String {
        let i = &self.info;
        let l = &self.limits;
        let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
        format!(
            "adapter:     {}\n\
             backend:     {:?}\n\
             device type: {:?}\n\
             driver:      {} ({})\n\
             vendor/device id: {:#06x}/{:#06x}\n\
             limits:      max_storage_buffer_binding_size {} ({:.0} MiB), max_buffer_size {} ({:.0} MiB),\n\
             \x20            max_compute_workgroups_per_dimension {}, max_compute_invocations_per_workgroup {},\n\
             \x20            max_storage_buffers_per_shader_stage {}\n\
             features:    {:?}",
            i.name,
            i.backend,
            i.device_type,
            if i.driver.is_empty() { "?" } else { &i.driver },
            if i.driver_info.is_empty() {
                "-"
            } else {
                &i.driver_info
            },
            i.vendor,
            i.device,
            l.max_storage_buffer_binding_size,
            mib(l.max_storage_buffer_binding_size),
            l.max_buffer_size,
            mib(l.max_buffer_size),
            l.max_compute_workgroups_per_dimension,
            l.max_compute_invocations_per_workgroup,
            l.max_storage_buffers_per_shader_stage,
            self.adapter_features,
        )
    }
}
