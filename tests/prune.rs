//! `gpuq prune`: structural cuts keep every dependent tensor and metadata key consistent
//! (checked by llama.cpp itself: a model whose pruned groups were dead gives the same logits
//! after the cut, which also proves query heads stay under their KV head and V heads under their
//! K head), no tensor of a pruned model falls back at Q4_K_M, unstructured sparsity is what was
//! asked per target, plans and scores round-trip, bad requests leave no output.

mod common;

use common::{gpuq, python};
use gpuq::formats::gguf::GgufFile;
use serde_json::Value as Json;
use std::collections::HashMap;
use std::path::Path;

const LLAMA: &str = include_str!("py/llama_fixture.py");
const HYBRID: &str = include_str!("py/hybrid_fixture.py");
const DEAD: &str = include_str!("py/prune_fixture.py");
const KL: &str = include_str!("py/kl_divergence.py");

const LLAMA_ARGS: &str = "--layers 2 --embd 512 --ff 1024 --vocab 512 --kv-heads 2 --seed 3";
const QWEN35_ARGS: &str = "--arch qwen35 --layers 4 --embd 256 --ff 1024 --heads 8 --heads-kv 2 \
                           --head-dim 64 --d-state 64 --k-heads 2 --v-heads 8 --seed 4";

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn make(script: &str, path: &Path, args: &str) {
    let mut a = vec!["make", s(path)];
    a.extend(args.split_whitespace());
    python(script, &a);
}

fn run(args: &[&str]) -> std::process::Output {
    let out = gpuq().args(args).output().expect("the gpuq binary runs");
    assert!(
        out.status.success(),
        "gpuq {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// llama.cpp's KL divergence of each model's logits against `reference` (64 tokens).
fn kl(reference: &Path, models: &[&Path]) -> Vec<f64> {
    let mut a = vec![s(reference), "5", "64"];
    a.extend(models.iter().map(|p| s(p)));
    let out: Json = serde_json::from_str(python(KL, &a).trim()).unwrap();
    models
        .iter()
        .map(|p| out[s(p)].as_f64().expect("a KL value per model"))
        .collect()
}

fn dims(f: &GgufFile) -> HashMap<String, Vec<u64>> {
    f.tensors
        .iter()
        .map(|t| (t.name.clone(), t.dims.clone()))
        .collect()
}

fn md_u64(f: &GgufFile, key: &str) -> u64 {
    f.get(key)
        .and_then(|v| v.as_u64())
        .unwrap_or_else(|| panic!("{key}"))
}

/// Kept groups per layer and kind from a saved plan.
fn kept(plan: &Path) -> HashMap<(String, u64), Vec<u64>> {
    let p: Json = serde_json::from_str(&std::fs::read_to_string(plan).unwrap()).unwrap();
    p["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                (
                    l["kind"].as_str().unwrap().to_string(),
                    l["layer"].as_u64().unwrap(),
                ),
                l["kept"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|x| x.as_u64().unwrap())
                    .collect(),
            )
        })
        .collect()
}

/// Makes `base` with dead groups (`--mlp F --heads F --vheads F`), prunes exactly those and
/// checks llama.cpp's logits do not move, the plan keeps exactly the live groups, and every
/// cut dimension and key agrees.
fn dead_groups_cut_cleanly(dir: &Path, base: &Path, dead: &str, keep: &[&str], arch: &str) {
    let dead_model = dir.join("dead.gguf");
    let mut a = vec![s(base), s(&dead_model)];
    a.extend(dead.split_whitespace());
    let dead_json: Json = serde_json::from_str(python(DEAD, &a).trim()).unwrap();
    let out = dir.join("pruned.gguf");
    let plan = dir.join("plan.json");
    let mut args = vec![
        "prune",
        s(&dead_model),
        "-o",
        s(&out),
        "--type",
        "F16",
        "--save-plan",
        s(&plan),
        "-q",
    ];
    args.extend(keep);
    run(&args);

    // the kept groups are exactly the live ones, in the order the kind needs
    let kept = kept(&plan);
    let src = GgufFile::open(&dead_model).unwrap();
    let n_head = md_u64(&src, &format!("{arch}.attention.head_count"));
    for (kind, per_layer) in dead_json.as_object().unwrap() {
        if kind == "layers" {
            continue;
        }
        for (layer, dead) in per_layer.as_object().unwrap() {
            let dead: Vec<u64> = dead
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_u64().unwrap())
                .collect();
            let plan_kind = if kind == "vheads" {
                "v_heads"
            } else {
                kind.as_str()
            };
            let got = &kept[&(plan_kind.to_string(), layer.parse().unwrap())];
            let n = got.len() + dead.len();
            let mut live: Vec<u64> = (0..n as u64).filter(|g| !dead.contains(g)).collect();
            if kind == "vheads" {
                // tiled: kept head i*nk + k is the i-th live head of K head k
                let nk = md_u64(&src, &format!("{arch}.ssm.group_count")) as usize;
                let per_k: Vec<Vec<u64>> = (0..nk)
                    .map(|k| {
                        live.iter()
                            .copied()
                            .filter(|g| *g as usize % nk == k)
                            .collect()
                    })
                    .collect();
                live = (0..per_k[0].len())
                    .flat_map(|i| per_k.iter().map(move |v| v[i]))
                    .collect();
            }
            assert_eq!(got, &live, "{kind} layer {layer}");
            if kind == "heads" {
                assert_eq!(n as u64, n_head);
            }
        }
    }

    // llama.cpp loads the cut model and its logits are the dead model's
    let d = kl(&dead_model, &[&out]);
    eprintln!(
        "{arch}: KL of the cut model against the dead-group model {:.3e}",
        d[0]
    );
    assert!(d[0] < 1e-5, "KL {}", d[0]);

    // every dependent tensor and key agrees
    let f = GgufFile::open(&out).unwrap();
    let (sd, od) = (dims(&src), dims(&f));
    let ff = md_u64(&f, &format!("{arch}.feed_forward_length"));
    let heads = md_u64(&f, &format!("{arch}.attention.head_count"));
    let hd = md_u64(&f, &format!("{arch}.attention.key_length"));
    for (name, d) in &od {
        let part = name.split('.').nth(2).unwrap_or("");
        let orig = &sd[name];
        match part {
            "ffn_gate" | "ffn_up" => assert_eq!(d[1], ff, "{name}"),
            "ffn_down" => assert_eq!(d[0], ff, "{name}"),
            "attn_q" => assert_eq!(d[1] * n_head, orig[1] * heads, "{name}"),
            "attn_output" => assert_eq!(d[0], heads * hd, "{name}"),
            "attn_k" | "attn_v" => assert_eq!(d, orig, "{name}"),
            _ => {}
        }
        if arch == "qwen35" {
            let nv = md_u64(&f, "qwen35.ssm.time_step_rank");
            let dv = md_u64(&f, "qwen35.ssm.inner_size") / nv;
            let nk = md_u64(&f, "qwen35.ssm.group_count");
            let ds = md_u64(&f, "qwen35.ssm.state_size");
            match part {
                "attn_qkv" => assert_eq!(d[1], 2 * nk * ds + nv * dv, "{name}"),
                "ssm_conv1d" => assert_eq!(d[1], 2 * nk * ds + nv * dv, "{name}"),
                "attn_gate" => assert_eq!(d[1], nv * dv, "{name}"),
                "ssm_alpha" | "ssm_beta" => assert_eq!(d[1], nv, "{name}"),
                "ssm_a" | "ssm_dt" => assert_eq!(d[0], nv, "{name}"),
                "ssm_out" => assert_eq!(d[0], nv * dv, "{name}"),
                _ => {}
            }
        }
    }
    assert!(
        f.get("general.pruned")
            .and_then(|v| v.as_str())
            .is_some_and(|r| r.contains("structural"))
    );
}

#[test]
fn cutting_dead_groups_of_a_llama_leaves_its_logits() {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("llama.gguf");
    make(LLAMA, &base, &format!("{LLAMA_ARGS} --dtype f16"));
    dead_groups_cut_cleanly(
        dir.path(),
        &base,
        "--mlp 0.25 --heads 0.5",
        &["--mlp-keep", "0.75", "--heads-keep", "0.5"],
        "llama",
    );
}

#[test]
fn removing_dead_layers_leaves_llama_cpp_logits_and_hybrids_refuse() {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("llama.gguf");
    make(
        LLAMA,
        &base,
        "--layers 4 --embd 512 --ff 1024 --vocab 512 --kv-heads 2 --seed 8 --dtype f16",
    );
    let dead = dir.path().join("dead.gguf");
    let j: Json =
        serde_json::from_str(python(DEAD, &[s(&base), s(&dead), "--layers", "2"]).trim()).unwrap();
    let out = dir.path().join("out.gguf");
    let plan = dir.path().join("plan.json");
    run(&[
        "prune",
        s(&dead),
        "-o",
        s(&out),
        "--type",
        "F16",
        "--layers-keep",
        "0.5",
        "--save-plan",
        s(&plan),
        "-q",
    ]);
    let p: Json = serde_json::from_str(&std::fs::read_to_string(&plan).unwrap()).unwrap();
    assert_eq!(p["removed_layers"], j["layers"]);
    let f = GgufFile::open(&out).unwrap();
    assert_eq!(md_u64(&f, "llama.block_count"), 2);
    assert!(f.tensors.iter().all(|t| !t.name.starts_with("blk.2.")));
    let d = kl(&dead, &[&out])[0];
    eprintln!("KL of the model without its 2 dead layers: {d:.3e}");
    assert!(d < 1e-5, "{d}");
    // a fixed pattern of layer kinds (and an MTP block) cannot lose a layer
    let q35 = dir.path().join("q35.gguf");
    make(HYBRID, &q35, QWEN35_ARGS);
    let bad = dir.path().join("bad.gguf");
    let o = gpuq()
        .args([
            "prune",
            s(&q35),
            "-o",
            s(&bad),
            "--type",
            "Q4_K_M",
            "--layers-keep",
            "0.75",
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && err.contains("full_attention_interval"),
        "{err}"
    );
    assert!(!bad.exists());
}

#[test]
fn cutting_dead_groups_of_a_qwen35_hybrid_leaves_its_logits() {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("q35.gguf");
    make(HYBRID, &base, QWEN35_ARGS);
    dead_groups_cut_cleanly(
        dir.path(),
        &base,
        "--mlp 0.25 --heads 0.5 --vheads 0.5",
        &[
            "--mlp-keep",
            "0.75",
            "--heads-keep",
            "0.5",
            "--vheads-keep",
            "0.5",
        ],
        "qwen35",
    );
}

/// Types by tensor name.
fn types(p: &Path) -> HashMap<String, String> {
    GgufFile::open(p)
        .unwrap()
        .tensors
        .iter()
        .map(|t| (t.name.clone(), t.ty.name().to_string()))
        .collect()
}

#[test]
fn pruned_models_take_q4_k_m_without_fallbacks_and_shrink() {
    let dir = tempfile::tempdir().unwrap();
    for (name, script, args, extra) in [
        ("llama", LLAMA, format!("{LLAMA_ARGS} --dtype f16"), vec![]),
        (
            "qwen35",
            HYBRID,
            QWEN35_ARGS.to_string(),
            vec!["--vheads-keep", "0.5"],
        ),
    ] {
        let base = dir.path().join(format!("{name}.gguf"));
        make(script, &base, &args);
        let q4 = dir.path().join(format!("{name}-q4.gguf"));
        run(&["quantize", s(&base), "-o", s(&q4), "--type", "Q4_K_M", "-q"]);
        let scores = dir.path().join(format!("{name}-scores.json"));
        let mut outs = Vec::new();
        for mlp in ["0.75", "0.5"] {
            let out = dir.path().join(format!("{name}-p{mlp}.gguf"));
            let mut a = vec![
                "prune",
                s(&base),
                "-o",
                s(&out),
                "--type",
                "Q4_K_M",
                "--mlp-keep",
                mlp,
                "--heads-keep",
                "0.5",
                "--scores",
                s(&scores),
            ];
            a.extend(&extra);
            let o = run(&a);
            let err = String::from_utf8_lossy(&o.stderr);
            assert!(!err.contains("fall back"), "{err}");
            // same type for every tensor as the unpruned Q4_K_M: no fallback
            assert_eq!(types(&out), types(&q4), "{name} keep {mlp}");
            assert!(std::fs::metadata(&out).unwrap().len() < std::fs::metadata(&q4).unwrap().len());
            outs.push(out);
        }
        // the second ratio reused the saved energies
        assert!(scores.exists());
        let d = kl(&base, &[&q4, &outs[0], &outs[1]]);
        eprintln!(
            "{name}: KL vs F16: Q4_K_M {:.4}, pruned mlp 0.75 {:.4}, mlp 0.5 {:.4} (heads 0.5); sizes {} {} {}",
            d[0],
            d[1],
            d[2],
            std::fs::metadata(&q4).unwrap().len(),
            std::fs::metadata(&outs[0]).unwrap().len(),
            std::fs::metadata(&outs[1]).unwrap().len()
        );
        assert!(d.iter().all(|x| x.is_finite()));
    }
}

#[test]
fn unstructured_sparsity_is_what_was_asked_per_target() {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("q35.gguf");
    make(HYBRID, &base, QWEN35_ARGS);
    let out = dir.path().join("u.gguf");
    let o = run(&[
        "prune",
        s(&base),
        "-o",
        s(&out),
        "--type",
        "F16",
        "--mode",
        "unstructured",
        "--attention-sparsity",
        "0.25",
        "--mlp-sparsity",
        "0.3",
    ]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("will not shrink"));
    let (a, b) = (
        GgufFile::open(&base).unwrap(),
        GgufFile::open(&out).unwrap(),
    );
    let mut seen = (0, 0);
    assert_eq!(a.tensors.len(), b.tensors.len());
    for ta in &a.tensors {
        let tb = b.tensors.iter().find(|t| t.name == ta.name).unwrap();
        assert_eq!((&ta.dims, ta.ty), (&tb.dims, tb.ty), "{}", ta.name);
        let (da, db) = (a.tensor_data(ta), b.tensor_data(tb));
        let part = ta.name.split('.').nth(2).unwrap_or("");
        let want = match part {
            "ffn_gate" | "ffn_up" | "ffn_down" => Some(0.3),
            "attn_q" | "attn_k" | "attn_v" | "attn_output" | "attn_qkv" | "attn_gate"
            | "ssm_out" | "ssm_alpha" | "ssm_beta" => Some(0.25),
            _ => None,
        };
        let Some(want) = want.filter(|_| ta.dims.len() == 2 && ta.name.ends_with(".weight")) else {
            assert_eq!(da, db, "{} is not a target: unchanged", ta.name);
            continue;
        };
        assert_eq!(ta.ty.name(), "F16", "{}", ta.name);
        let row = ta.dims[0] as usize;
        let (mut zeros, mut kept_same) = (0usize, true);
        for (ra, rb) in da.chunks_exact(row * 2).zip(db.chunks_exact(row * 2)) {
            let (mut z, mut z_in) = (0, 0);
            for (x, y) in ra.chunks_exact(2).zip(rb.chunks_exact(2)) {
                z += (y == [0, 0]) as usize;
                z_in += (x == [0, 0]) as usize;
                if x != y && y != [0, 0] {
                    kept_same = false;
                }
            }
            // every row loses its share, to one weight (a weight already zero may be chosen)
            let k = (want * row as f64).round() as usize;
            assert!(z >= k && z <= k + z_in, "{}: {z} zeros, {k} asked", ta.name);
            zeros += z;
        }
        assert!(kept_same, "{}: a kept weight changed", ta.name);
        let got = zeros as f64 / (da.len() / 2) as f64;
        assert!((got - want).abs() < 0.005, "{}: {got}", ta.name);
        if want == 0.3 {
            seen.0 += 1;
        } else {
            seen.1 += 1;
        }
    }
    assert!(seen.0 >= 15 && seen.1 >= 15, "{seen:?}");
    // the pruned weights are nearly the smallest of their row: with the energy benefit the
    // game ranks by magnitude, except near `e = gamma`, where players that left chatter between
    // 0 and one step of their benefit (the `[s > 0]` term) and may outrank a slightly larger
    // weight still on its way out
    let (mut outside, mut pruned) = (0usize, 0usize);
    for name in [
        "blk.0.ffn_up.weight",
        "blk.3.attn_q.weight",
        "blk.1.attn_qkv.weight",
    ] {
        let ta = a.tensors.iter().find(|t| t.name == name).unwrap();
        let tb = b.tensors.iter().find(|t| t.name == name).unwrap();
        let f16 = |c: &[u8]| half::f16::from_le_bytes([c[0], c[1]]).to_f32().abs();
        let row = ta.dims[0] as usize * 2;
        for (ra, rb) in a
            .tensor_data(ta)
            .chunks_exact(row)
            .zip(b.tensor_data(tb).chunks_exact(row))
        {
            let mags: Vec<f32> = ra.chunks_exact(2).map(f16).collect();
            let gone: Vec<bool> = rb.chunks_exact(2).map(|y| y == [0, 0]).collect();
            let k = gone.iter().filter(|g| **g).count();
            let mut sorted = mags.clone();
            sorted.sort_by(f32::total_cmp);
            let t = sorted[k.saturating_sub(1)];
            pruned += k;
            outside += mags
                .iter()
                .zip(&gone)
                .filter(|(m, g)| **g && **m > t)
                .count();
        }
    }
    eprintln!("pruned weights not among their row's smallest: {outside} of {pruned}");
    assert!(
        pruned > 10_000 && outside * 20 < pruned,
        "{outside} of {pruned}"
    );
}

#[test]
fn plans_and_scores_round_trip_and_bad_requests_leave_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let base = d.join("llama.gguf");
    make(LLAMA, &base, &format!("{LLAMA_ARGS} --dtype f16"));
    let (plan, scores, a, b, c) = (
        d.join("plan.json"),
        d.join("scores.json"),
        d.join("a.gguf"),
        d.join("b.gguf"),
        d.join("c.gguf"),
    );
    let keep = ["--mlp-keep", "0.5", "--heads-keep", "0.5"];
    let mut args = vec![
        "prune",
        s(&base),
        "--type",
        "Q4_K_M",
        "--dry-run",
        "--save-plan",
        s(&plan),
    ];
    args.extend(["--scores", s(&scores)]);
    args.extend(keep);
    let o = run(&args);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.contains("layer   1 mlp channels") && text.contains("0 tensor(s) fall back"),
        "{text}"
    );
    assert!(!a.exists() && plan.exists() && scores.exists());
    // the same cut three ways: measured, from saved energies, from the saved plan
    let mut args = vec!["prune", s(&base), "-o", s(&a), "--type", "Q4_K_M", "-q"];
    args.extend(keep);
    run(&args);
    let mut args = vec![
        "prune",
        s(&base),
        "-o",
        s(&b),
        "--type",
        "Q4_K_M",
        "--scores",
        s(&scores),
    ];
    args.extend(keep);
    let o = run(&args);
    assert!(String::from_utf8_lossy(&o.stderr).contains("no score pass"));
    let o = run(&[
        "prune",
        s(&base),
        "-o",
        s(&c),
        "--type",
        "Q4_K_M",
        "--plan",
        s(&plan),
        "-q",
        "--kl",
        "16",
    ]);
    // --kl: llama.cpp's divergence of the written model from the input
    let text = String::from_utf8_lossy(&o.stdout);
    let nats: f64 = text
        .split("tokens: ")
        .nth(1)
        .and_then(|t| t.split_whitespace().next())
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| panic!("{text}"));
    assert!(nats.is_finite() && nats > 0.0, "{text}");
    let bytes = std::fs::read(&a).unwrap();
    assert_eq!(bytes, std::fs::read(&b).unwrap());
    assert_eq!(bytes, std::fs::read(&c).unwrap());

    // an edited plan or scores file is refused, never trusted: a kept head moved to another KV
    // head, a group dropped from a layer, a removed layer past the model, an energy missing
    let text = std::fs::read_to_string(&plan).unwrap();
    let mut lied = Vec::new();
    let mut p: Json = serde_json::from_str(&text).unwrap();
    let heads = p["layers"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|l| l["kind"] == "heads")
        .unwrap();
    heads["kept"] = serde_json::json!([0, 1, 2, 3]);
    lied.push(("--plan", p));
    let mut p: Json = serde_json::from_str(&text).unwrap();
    p["layers"][0]["kept"].as_array_mut().unwrap().pop();
    lied.push(("--plan", p));
    let mut p: Json = serde_json::from_str(&text).unwrap();
    p["removed_layers"] = serde_json::json!([7]);
    lied.push(("--plan", p));
    let mut sc: Json = serde_json::from_str(&std::fs::read_to_string(&scores).unwrap()).unwrap();
    sc["groups"][0]["energy"][0]["per_group"]
        .as_array_mut()
        .unwrap()
        .pop();
    lied.push(("--scores", sc));
    let mut sc: Json = serde_json::from_str(&std::fs::read_to_string(&scores).unwrap()).unwrap();
    sc["groups"][1]["groups"]["n"] = serde_json::json!(4);
    lied.push(("--scores", sc));
    let edited = d.join("edited.json");
    let bad_out = d.join("lied.gguf");
    for (flag, j) in lied {
        std::fs::write(&edited, j.to_string()).unwrap();
        let mut a = vec![
            "prune",
            s(&base),
            "-o",
            s(&bad_out),
            "--type",
            "Q4_K_M",
            flag,
            s(&edited),
        ];
        if flag == "--scores" {
            a.extend(keep);
        }
        let out = gpuq().args(&a).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && err.contains("edited or damaged"),
            "{flag}: {err}"
        );
        assert!(!bad_out.exists());
    }

    // a quantized input is decoded tile by tile
    let q8 = d.join("q8.gguf");
    run(&["quantize", s(&base), "-o", s(&q8), "--type", "Q8_0", "-q"]);
    let from_q8 = d.join("from-q8.gguf");
    run(&[
        "prune",
        s(&q8),
        "-o",
        s(&from_q8),
        "--type",
        "Q4_K_M",
        "--mlp-keep",
        "0.5",
        "--allow-requantize",
        "-q",
    ]);
    assert!(kl(&base, &[&from_q8])[0].is_finite());

    // refusals: no output, a message that says why
    let other = d.join("other.gguf");
    make(
        LLAMA,
        &other,
        "--layers 3 --embd 512 --ff 1024 --vocab 512 --kv-heads 2 --seed 3 --dtype f16",
    );
    let bad = d.join("bad.gguf");
    for (args, says) in [
        (vec!["--plan", s(&plan)], "another model"),
        (vec!["--scores", s(&scores)], "another model"),
        (vec!["--mlp-keep", "0"], "keep ratio"),
        (vec!["--heads-keep", "0.3", "--align", "512"], "--align"),
        (
            vec![
                "--mode",
                "structural",
                "--benefit",
                "signed",
                "--mlp-keep",
                "0.5",
            ],
            "sign",
        ),
        (vec![], "nothing to prune"),
    ] {
        let mut a = vec!["prune", s(&other), "-o", s(&bad), "--type", "Q4_K_M"];
        a.extend(args.iter());
        let out = gpuq().args(&a).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && err.contains(says),
            "{args:?}: {err}"
        );
        assert!(!bad.exists() && !d.join("bad.gguf.tmp").exists());
    }
}

const HF_MODEL: &str = include_str!("py/hf_model.py");
const HF_HYBRID: &str = include_str!("py/hf_hybrid.py");

/// hf_model.py's definitions (without its command dispatch), then hf_hybrid.py.
fn hf_script() -> String {
    let defs = HF_MODEL
        .split("\nif __name__ == \"__main__\":")
        .next()
        .unwrap();
    format!("{defs}\n{HF_HYBRID}")
}

/// Tensor bytes by name.
fn tensor_bytes(p: &Path) -> HashMap<String, (Vec<u64>, Vec<u8>)> {
    let f = GgufFile::open(p).unwrap();
    f.tensors
        .iter()
        .map(|t| (t.name.clone(), (t.dims.clone(), f.tensor_data(t).to_vec())))
        .collect()
}

#[test]
fn hf_folders_prune_into_folders_that_convert_to_the_pruned_gguf() {
    let dir = tempfile::tempdir().unwrap();
    for (kind, keep) in [
        (
            "llama",
            vec![
                "--mlp-keep",
                "0.5",
                "--heads-keep",
                "0.5",
                "--layers-keep",
                "0.5",
            ],
        ),
        (
            "qwen35",
            vec![
                "--mlp-keep",
                "0.5",
                "--heads-keep",
                "0.5",
                "--vheads-keep",
                "0.5",
            ],
        ),
    ] {
        let d = dir.path().join(kind);
        let ds = s(&d);
        if kind == "llama" {
            python(HF_MODEL, &["make", ds, "llama", "11", "--shards", "2"]);
        } else {
            python(
                &hf_script(),
                &["make-ext", ds, "qwen35", "12", "--shards", "2"],
            );
        }
        let out = dir.path().join(format!("{kind}-pruned"));
        let direct = dir.path().join(format!("{kind}-direct.gguf"));
        let conv = dir.path().join(format!("{kind}-conv.gguf"));
        let common = ["--align", "1", "--vocab-pre", "gpt-2", "-q"];
        let mut a = vec!["prune", ds, "-o", s(&out)];
        a.extend(&keep);
        a.extend(common);
        run(&a);
        let mut a = vec!["prune", ds, "-o", s(&direct), "--type", "F32"];
        a.extend(&keep);
        a.extend(common);
        run(&a);
        run(&[
            "convert",
            s(&out),
            "-o",
            s(&conv),
            "--outtype",
            "f32",
            "--vocab-pre",
            "gpt-2",
            "-q",
        ]);
        // the folder holds the same shards, a regenerated index, the new widths
        let index: Json = serde_json::from_str(
            &std::fs::read_to_string(out.join("model.safetensors.index.json")).unwrap(),
        )
        .unwrap();
        let map = index["weight_map"].as_object().unwrap();
        assert!(
            map.values()
                .all(|v| v.as_str().unwrap().ends_with("-of-00002.safetensors"))
        );
        let config: Json =
            serde_json::from_str(&std::fs::read_to_string(out.join("config.json")).unwrap())
                .unwrap();
        assert_eq!(config["num_attention_heads"], 2, "{kind}");
        if kind == "llama" {
            assert_eq!(config["num_hidden_layers"], 1);
            assert!(map.keys().all(|k| !k.contains("layers.1.")));
        }
        if kind == "qwen35" {
            assert_eq!(config["intermediate_size"], 64);
            assert_eq!(config["linear_num_value_heads"], 2);
        }
        assert!(
            out.join("tokenizer.json").exists()
                && !dir.path().join(format!("{kind}-pruned.tmp")).exists()
        );
        // converting the pruned folder gives the pruned GGUF, tensor for tensor
        let (x, y) = (tensor_bytes(&direct), tensor_bytes(&conv));
        assert_eq!(x.len(), y.len(), "{kind}");
        for (name, v) in &x {
            assert_eq!(Some(v), y.get(name), "{kind}: {name}");
        }
        // and an independent numpy forward pass of the pruned folder (reading its config.json)
        // agrees with llama.cpp's logits of that GGUF
        if kind == "llama" {
            python(HF_MODEL, &["check", s(&out), s(&conv), "1e-3"]);
        } else {
            python(&hf_script(), &["check-ext", s(&out), s(&conv), "1e-3"]);
        }
    }
}

#[test]
fn the_gpu_prunes_to_the_cpus_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("q35.gguf");
    make(HYBRID, &base, QWEN35_ARGS);
    for (mode, extra) in [
        (
            "structural",
            vec![
                "--mlp-keep",
                "0.75",
                "--heads-keep",
                "0.5",
                "--vheads-keep",
                "0.5",
            ],
        ),
        ("unstructured", vec!["--benefit", "signed"]),
        ("unstructured", vec![]),
    ] {
        let mut outs = Vec::new();
        for backend in ["cpu", "gpu"] {
            let out = dir.path().join(format!("{mode}-{backend}.gguf"));
            let mut a = vec![
                "prune",
                s(&base),
                "-o",
                s(&out),
                "--type",
                "Q4_K_M",
                "--mode",
                mode,
                "--backend",
                backend,
                "-q",
            ];
            a.extend(&extra);
            let o = gpuq().args(&a).output().unwrap();
            if backend == "gpu" && common::no_gpu(&o) {
                return;
            }
            assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
            outs.push(std::fs::read(&out).unwrap());
        }
        assert!(
            outs[0] == outs[1],
            "{mode} {extra:?}: the GPU's file differs from the CPU's"
        );
    }
}
