//! Which type each tensor gets: llama-quantize's mixtures (Q4_K_M, …), its per-tensor rules
//! (src/llama-quant.cpp), fallbacks and user overrides; and the types that fit a byte budget
//! (`target`).

mod hybrid;
mod mixture;
mod plan;
pub mod prune;
mod role;
pub mod runtime;
pub mod target;

pub use hybrid::HybridPolicy;
pub use mixture::{MIXTURES, Mixture};
pub use plan::{
    Hparams, PlanError, PlanOptions, TensorDesc, TensorPlan, fallback_type, loader_order_key,
    plan_types, requires_imatrix,
};
pub use role::{Category, Role, allows_quantization, n_dims, roles};
