//! `gpuq prune`: equilibrium pruning (structural or unstructured) and quantizing in one pass.

use crate::cli::progress::{ProgressReporter, job_engine};
use crate::cli::quantize_report::write_atomic;
use crate::error::{Error, Result};
use crate::jobs::prune::{self, Keep, PrunePlan, PrunedSource, Scores};
use crate::measure::participation::{Benefit, Participation};
use crate::model::{ModelSource, open_source_with};
use crate::policy::Mixture;
use crate::quantize::{self, QuantizeOptions};
use std::path::PathBuf;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    /// Remove whole MLP channels, attention heads, linear-attention V heads: the model shrinks.
    Structural,
    /// Zero single weights (per row): the GGUF does not shrink (zeros are still encoded).
    Unstructured,
}

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Input model: a GGUF file (float or quantized, decoded tile by tile) or a Hugging Face
    /// folder.
    pub input: PathBuf,
    /// Output GGUF.
    #[arg(short, long)]
    pub output: Option<PathBuf>,
    /// Output mixture, as llama-quantize names it (Q4_K_M, Q8_0, …; F16 or BF16 keep floats).
    #[arg(long = "type", short = 't')]
    pub ty: Option<String>,
    #[arg(long, value_enum, default_value_t = Mode::Structural)]
    pub mode: Mode,
    /// Structural: the share of MLP channels each layer keeps.
    #[arg(long, default_value_t = 1.0)]
    pub mlp_keep: f64,
    /// Structural: the share of attention query heads each layer keeps (per KV head).
    #[arg(long, default_value_t = 1.0)]
    pub heads_keep: f64,
    /// Structural: the share of Gated DeltaNet V heads each layer keeps (per K head).
    #[arg(long, default_value_t = 1.0)]
    pub vheads_keep: f64,
    /// Structural: the share of whole layers kept (refused for hybrids with a fixed
    /// full_attention_interval and for models with MTP blocks).
    #[arg(long, default_value_t = 1.0)]
    pub layers_keep: f64,
    /// Structural: kept counts keep every cut row length a multiple of this (default: the
    /// block of --type's main type, 256 for k-quants, 32 for legacy types, 1 for floats).
    #[arg(long)]
    pub align: Option<u64>,
    /// Unstructured: the share of each attention matrix's weights set to zero (per row).
    #[arg(long, default_value_t = 0.25)]
    pub attention_sparsity: f64,
    /// Unstructured: the share of each MLP matrix's weights set to zero (per row).
    #[arg(long, default_value_t = 0.30)]
    pub mlp_sparsity: f64,
    /// The participation game: benefit weight.
    #[arg(long, default_value_t = Participation::default().alpha)]
    pub alpha: f32,
    /// The participation game: cost weight.
    #[arg(long, default_value_t = Participation::default().beta)]
    pub beta: f32,
    /// The participation game: L1 penalty of taking part.
    #[arg(long, default_value_t = Participation::default().gamma)]
    pub gamma: f32,
    /// The participation game: step size.
    #[arg(long, default_value_t = Participation::default().lr)]
    pub lr: f32,
    /// The participation game: iterations.
    #[arg(long, default_value_t = Participation::default().iterations)]
    pub iterations: u32,
    /// The participation game: every player's starting level.
    #[arg(long, default_value_t = Participation::default().init)]
    pub init: f32,
    /// Unstructured: the benefit term, `energy` (|w|·|w|) or `signed` (|w|·w, as the method's
    /// user-side code writes it: every negative weight is pruned).
    #[arg(long, value_enum, default_value_t = Benefit::Energy)]
    pub benefit: Benefit,
    /// Print the plan per layer and the output size; write no model.
    #[arg(long)]
    pub dry_run: bool,
    /// Structural: write the plan (kept groups per layer, damage) as JSON.
    #[arg(long, value_name = "FILE")]
    pub save_plan: Option<PathBuf>,
    /// Structural: apply a saved plan (no score pass).
    #[arg(long, value_name = "FILE", conflicts_with = "save_plan")]
    pub plan: Option<PathBuf>,
    /// Structural: group energies: read from FILE when it exists (no pass over the weights),
    /// else measured and written there, so a second keep ratio costs no pass.
    #[arg(long, value_name = "FILE")]
    pub scores: Option<PathBuf>,
    /// Allow quantized inputs to be requantized (their pruned tensors are decoded to F32).
    #[arg(long)]
    pub allow_requantize: bool,
    #[command(flatten)]
    pub run: crate::cli::run_args::RunArgs,
    /// After writing a GGUF, llama.cpp's KL divergence of its logits against the unpruned
    /// model over TOKENS fixed token ids (default 128); runs python3 with llama-cpp-python.
    #[arg(long, value_name = "TOKENS", num_args = 0..=1, default_missing_value = "128")]
    pub kl: Option<u32>,
    /// The unpruned GGUF --kl compares with (default: the input, when it is a GGUF).
    #[arg(long, value_name = "FILE", requires = "kl")]
    pub kl_reference: Option<PathBuf>,
    /// Hugging Face folder: write this tokenizer.ggml.pre instead of identifying it.
    #[arg(long, value_name = "NAME")]
    pub vocab_pre: Option<String>,
    /// Hugging Face folder: write no tokenizer into a GGUF output.
    #[arg(long)]
    pub no_tokenizer: bool,
    #[command(flatten)]
    pub write: crate::cli::write_args::WriteArgs,
}

impl Args {
    fn params(&self) -> Participation {
        Participation {
            alpha: self.alpha,
            beta: self.beta,
            gamma: self.gamma,
            lr: self.lr,
            iterations: self.iterations,
            init: self.init,
            benefit: self.benefit,
        }
    }
}

pub fn run(a: Args) -> Result<()> {
    // a type writes a GGUF; without one a Hugging Face input prunes into a folder
    let mixture = match &a.ty {
        Some(t) => Some(Mixture::parse(t).map_err(Error::Invalid)?),
        None if a.input.is_dir() => None,
        None => {
            return Err(Error::Invalid(
                "no output type: pass --type Q4_K_M (or F16 / BF16 to keep the weights float);                  without --type only a Hugging Face folder prunes into a folder"
                    .into(),
            ));
        }
    };
    let output = match (&a.output, a.dry_run) {
        (Some(o), _) => Some(o.clone()),
        (None, true) => None,
        (None, false) => {
            return Err(Error::Invalid(
                "no output: pass -o OUT.gguf (or -o DIR for a pruned Hugging Face folder)".into(),
            ));
        }
    };
    crate::cli::run_args::set_threads(a.run.threads);
    let params = a.params();
    params.check().map_err(Error::Invalid)?;
    if a.mode == Mode::Structural && a.benefit != Benefit::Energy {
        return Err(Error::Invalid(
            "--benefit signed scores single weights (--mode unstructured); groups have no sign"
                .into(),
        ));
    }
    let (hf, boxed) = if a.input.is_dir() {
        let hf_opts = crate::model::hf::HfOptions {
            vocab_pre: a.vocab_pre.clone(),
            no_tokenizer: a.no_tokenizer,
        };
        let hf = crate::model::hf::HfSource::open(&a.input, &hf_opts)?;
        (Some(hf), None)
    } else {
        let b = crate::model::ollama::apply(
            open_source_with(&a.input, &Default::default())?,
            false,
            &mut |line: String| {
                if !a.run.quiet {
                    eprintln!("gpuq: {line}")
                }
            },
        )?;
        (None, Some(b))
    };
    let src: &dyn ModelSource = match (&hf, &boxed) {
        (Some(h), _) => h,
        (_, Some(b)) => b.as_ref(),
        _ => unreachable!("one source is open"),
    };
    if let Some(o) = &output
        && std::fs::canonicalize(o).ok() == std::fs::canonicalize(&a.input).ok()
        && o.exists()
    {
        return Err(Error::Invalid(format!(
            "{}: the output would overwrite the input",
            o.display()
        )));
    }
    let kl_reference = match (a.kl, &a.kl_reference, a.input.is_dir()) {
        (None, _, _) => None,
        (Some(_), Some(r), _) => Some(r.clone()),
        (Some(_), None, false) => Some(a.input.clone()),
        (Some(_), None, true) => {
            return Err(Error::Invalid(
                "--kl needs an unpruned GGUF to compare with: pass --kl-reference MODEL.gguf \
                 (e.g. gpuq convert of the folder)"
                    .into(),
            ));
        }
    };
    if kl_reference.is_some() && a.ty.is_none() {
        return Err(Error::Invalid(
            "--kl compares GGUF files: pass --type to write one".into(),
        ));
    }
    let engine = job_engine(a.run.backend, a.run.quiet)?;
    let progress = ProgressReporter::new(a.run.quiet);

    let mut kept_plan = None;
    let (edits, md) = match a.mode {
        Mode::Unstructured => {
            if !a.run.quiet || a.dry_run {
                eprintln!(
                    "gpuq: unstructured pruning zeroes {:.0}% of each attention row and {:.0}% of \
                     each MLP row; the file will not shrink (zeros are still encoded in every \
                     block): use --mode structural to save bytes",
                    a.attention_sparsity * 100.0,
                    a.mlp_sparsity * 100.0
                );
            }
            prune::unstructured_edits(src, a.attention_sparsity, a.mlp_sparsity)?
        }
        Mode::Structural => {
            let plan = match &a.plan {
                Some(path) => {
                    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
                    PrunePlan::from_json(&text, &path.display().to_string(), src)?
                }
                None => {
                    // a folder is converted later, most often to a k-quant
                    let align = a.align.unwrap_or(match mixture {
                        Some(m) if m.default.is_quantized() => m.default.block_elems(),
                        Some(_) => 1,
                        None => 256,
                    });
                    let scores = scores(&a, src, &engine, &progress)?;
                    let keep = Keep {
                        mlp: a.mlp_keep,
                        heads: a.heads_keep,
                        vheads: a.vheads_keep,
                        layers: a.layers_keep,
                    };
                    prune::plan_structural(src, &engine, &scores, keep, align, params)?
                }
            };
            if let Some(path) = &a.save_plan {
                write_atomic(path, plan.to_json()?.as_bytes())?;
                if !a.run.quiet {
                    eprintln!("gpuq: prune plan written to {}", path.display());
                }
            }
            if a.dry_run || !a.run.quiet {
                print_structural(&plan, a.dry_run);
            }
            let e = prune::structural_edits(src, &plan)?;
            kept_plan = Some(plan);
            e
        }
    };
    let Some(mixture) = mixture else {
        // a Hugging Face folder in, a pruned folder out
        let hf = hf
            .as_ref()
            .ok_or_else(|| Error::Invalid("no Hugging Face input".into()))?;
        if a.dry_run {
            println!("a pruned Hugging Face folder would be written (no --type: no GGUF)");
            return Ok(());
        }
        let out = output.ok_or_else(|| Error::Invalid("no output folder".into()))?;
        let bytes = prune::hf_out::write_folder(
            hf,
            &edits,
            kept_plan.as_ref(),
            &engine,
            &params,
            a.run.max_memory,
            &out,
            &progress,
        )?;
        if !a.run.quiet {
            eprintln!(
                "gpuq: {} -> {}: {:.2} MiB of weights",
                a.input.display(),
                out.display(),
                bytes as f64 / (1 << 20) as f64
            );
        }
        return Ok(());
    };
    let pruned = PrunedSource::new(src, &engine, params, edits, &md)?;
    let mut opts = QuantizeOptions::new(mixture.name)?;
    opts.max_memory = a.run.max_memory;
    opts.allow_requantize = a.allow_requantize;
    opts.write = a.write.options(false);
    let plans = quantize::plan(&pruned, &opts)?;
    let out_bytes: u64 = pruned
        .tensors()
        .iter()
        .zip(&plans)
        .map(|(t, p)| p.target.tensor_bytes(&t.dims).unwrap_or(0))
        .sum();
    let in_bytes: u64 = src
        .tensors()
        .iter()
        .zip(quantize::plan(src, &opts).ok().unwrap_or_default())
        .map(|(t, p)| p.target.tensor_bytes(&t.dims).unwrap_or(0))
        .sum();
    let fallbacks: Vec<&str> = pruned
        .tensors()
        .iter()
        .zip(&plans)
        .filter(|(_, p)| p.fallback)
        .map(|(t, _)| t.name.as_str())
        .collect();
    if a.dry_run {
        if a.mode == Mode::Unstructured {
            println!("{:<44} {:>9} {:>14}", "tensor", "zeros", "energy removed");
            for (name, zeros, removed) in
                prune::unstructured_damage(src, &pruned, &engine, a.run.max_memory, &progress)?
            {
                println!(
                    "{name:<44} {:>8.2}% {:>13.3}%",
                    zeros * 100.0,
                    removed * 100.0
                );
            }
        }
        println!(
            "output at {}: {:.2} MiB (unpruned {:.2} MiB, {:.1}% saved); {} tensor(s) fall back \
             to another type{}",
            mixture.name,
            out_bytes as f64 / (1 << 20) as f64,
            in_bytes as f64 / (1 << 20) as f64,
            100.0 * (1.0 - out_bytes as f64 / in_bytes.max(1) as f64),
            fallbacks.len(),
            if fallbacks.is_empty() {
                String::new()
            } else {
                format!(": {}", fallbacks.join(", "))
            }
        );
        return Ok(());
    }
    if !fallbacks.is_empty() && !a.run.quiet {
        eprintln!(
            "gpuq: {} tensor(s) do not fit {}'s block and fall back: {}",
            fallbacks.len(),
            mixture.name,
            fallbacks.join(", ")
        );
    }
    let output = output.ok_or_else(|| Error::Invalid("no output file".into()))?;
    let s = quantize::quantize(&pruned, &output, &engine, &opts, &progress)?;
    if !a.run.quiet {
        eprintln!(
            "gpuq: {} -> {} ({}): {} tensors, {:.2} MiB (unpruned at this type {:.2} MiB), {:.2} s",
            a.input.display(),
            output.display(),
            mixture.name,
            s.tensors,
            s.output_bytes as f64 / (1 << 20) as f64,
            in_bytes as f64 / (1 << 20) as f64,
            s.seconds
        );
    }
    if let (Some(tokens), Some(reference)) = (a.kl, &kl_reference) {
        let d = kl_divergence(reference, &output, tokens)?;
        println!(
            "KL divergence of {} against {} over {tokens} tokens: {d:.6} nats",
            output.display(),
            reference.display()
        );
    }
    Ok(())
}

/// llama.cpp's mean KL divergence of `model`'s next-token distributions against
/// `reference`'s (tests/py/kl_divergence.py run by python3 with llama-cpp-python).
fn kl_divergence(reference: &std::path::Path, model: &std::path::Path, tokens: u32) -> Result<f64> {
    const SCRIPT: &str = include_str!("../../tests/py/kl_divergence.py");
    let (r, m) = (reference.to_string_lossy(), model.to_string_lossy());
    let out = std::process::Command::new("python3")
        .arg("-c")
        .arg(SCRIPT)
        .args([r.as_ref(), "1", &tokens.to_string(), m.as_ref()])
        .output()
        .map_err(|e| {
            Error::Invalid(format!(
                "--kl runs python3 with llama-cpp-python (pip install llama-cpp-python): {e}"
            ))
        })?;
    let text = String::from_utf8_lossy(&out.stdout);
    let v: Option<f64> = serde_json::from_str::<serde_json::Value>(text.trim())
        .ok()
        .and_then(|j| j.get(m.as_ref()).and_then(|x| x.as_f64()));
    match (out.status.success(), v) {
        (true, Some(v)) => Ok(v),
        _ => {
            let err = String::from_utf8_lossy(&out.stderr);
            let tail: Vec<&str> = err.lines().rev().take(3).collect();
            Err(Error::Invalid(format!(
                "--kl: llama.cpp could not compare {m} with {r} (needs python3 with \
                 llama-cpp-python): {}",
                tail.into_iter().rev().collect::<Vec<_>>().join(" | ")
            )))
        }
    }
}

/// The group energies: read from `--scores` when that file exists, else measured (and saved
/// there when named).
fn scores(
    a: &Args,
    src: &dyn ModelSource,
    engine: &crate::Engine,
    progress: &ProgressReporter,
) -> Result<Scores> {
    if let Some(path) = &a.scores
        && path.exists()
    {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let s = Scores::from_json(&text, &path.display().to_string(), src)?;
        if !a.run.quiet {
            eprintln!(
                "gpuq: group energies from {} (no score pass)",
                path.display()
            );
        }
        return Ok(s);
    }
    let layout = prune::layout(src)?;
    if !a.run.quiet {
        for line in prune::describe_layout(&layout) {
            eprintln!("gpuq: {line}");
        }
    }
    let s = prune::measure(src, engine, layout, a.run.max_memory, progress)?;
    if let Some(path) = &a.scores {
        write_atomic(path, s.to_json()?.as_bytes())?;
        if !a.run.quiet {
            eprintln!("gpuq: group energies written to {}", path.display());
        }
    }
    Ok(s)
}

/// The plan per layer: kept of each kind, the energy share each matrix loses.
fn print_structural(p: &PrunePlan, stdout: bool) {
    let mut lines = vec![format!(
        "{}: {} -> {} parameters ({:.1}% removed)",
        p.recipe,
        p.params_before,
        p.params_after,
        100.0 * (1.0 - p.params_after as f64 / p.params_before.max(1) as f64)
    )];
    if !p.removed_layers.is_empty() {
        lines.push(format!(
            "  layers removed: {:?} (participation per layer: {})",
            p.removed_layers,
            p.layer_scores
                .iter()
                .map(|s| format!("{s:.3}"))
                .collect::<Vec<_>>()
                .join(" ")
        ));
    }
    for lp in &p.layers {
        let k = p.kinds.iter().find(|k| k.kind == lp.kind);
        let removed = lp
            .removed
            .iter()
            .map(|r| {
                format!(
                    "{} {:.2}%",
                    r.tensor.split('.').skip(2).collect::<Vec<_>>().join("."),
                    r.energy_share * 100.0
                )
            })
            .collect::<Vec<_>>()
            .join(", ");
        lines.push(format!(
            "  layer {:>3} {:<26} {} -> {}; energy removed: {removed}",
            lp.layer,
            lp.kind.name(),
            k.map(|k| k.from).unwrap_or(0),
            lp.kept.len()
        ));
    }
    for l in lines {
        if stdout {
            println!("{l}");
        } else {
            eprintln!("gpuq: {l}");
        }
    }
}
