//! The run flags every converting command shares: `--backend`, `--threads`, `--max-memory`,
//! `-q`.

use crate::cli::args::parse_size;
use crate::engine::Backend;

#[derive(clap::Args, Debug, Clone)]
pub struct RunArgs {
    /// Compute backend.
    #[arg(long, value_enum, default_value_t = Backend::Auto)]
    pub backend: Backend,
    /// CPU worker threads (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Memory for tile buffers, e.g. 512M, 2G.
    #[arg(long, default_value = "2G", value_parser = parse_size)]
    pub max_memory: u64,
    /// No progress output.
    #[arg(short, long)]
    pub quiet: bool,
}

/// Sizes rayon's global pool to `threads` when given. The pool can be configured once per
/// process; a later call (tests running several commands) keeps the first size.
pub fn set_threads(threads: Option<usize>) {
    if let Some(n) = threads {
        let _ = rayon::ThreadPoolBuilder::new()
            .num_threads(n.max(1))
            .build_global();
    }
}
