// gpuq: equilibrium pruning's score pass (CPU twin: measure::participation, the same
// operations in the same order).
//
// Binding layout: the codec layout of gpu::kernels (Layout::Codec), read as follows:
//   params.n_blocks   prune_elements, prune_row_energy: rows in this call (one workgroup each);
//                     prune_groups: players; prune_col_energy: rows summed by this call
//   params.row_len    elements per row (prune_groups: unused)
//   src               the f32 inputs as bits (weights, or the groups' energies)
//   dst               one f32 (bits) per output: a score per input, a sum per row or column
//   side              the iteration's parameters, then `data`: prune_col_energy's running
//                     column sums (the sums of the rows of earlier calls; zeros at first)
//
// Exact arithmetic: every product and sum goes through `keep` (its bits ORed with
// `params.zero`, always 0 but unknown to the compiler), so it is rounded on its own: no fused
// multiply-add, no reassociation. The row scale `row_len / ss` uses `soft_div` (common.wgsl),
// correctly rounded as the CPU's `/` is; WGSL's own `/` may be off by 2.5 ulp.
//
// LOOP BUDGET (common.wgsl): lavapipe leaves every loop early once one SIMD group has run
// 65535 loop iterations. The host keeps each call within it (gpu::prune::loop_count): the
// iteration is unrolled by 8, a row kernel runs ceil(row_len / 256) * (iterations / 8 + 8)
// + ceil(row_len / 256) + 8 iterations, prune_col_energy one per row of its call.

// The row kernels' workgroup size: the lanes of measure::participation::SUM_LANES.
const LANES: u32 = 256u;

// Parameters of the iteration. Rust twin: gpu::prune::PruneParams (same field order).
struct PruneParams {
    alpha: f32,
    beta: f32,
    gamma: f32,
    lr: f32,
    init: f32,
    iterations: u32,
    // 0: energy benefit (x * x * scale), 1: signed (|x| * x * scale)
    benefit: u32,
    // row_len as f32, converted by the host (Rust `as f32`)
    row_len_f: f32,
}

struct PruneSide {
    p: PruneParams,
    data: array<f32>,
}

@group(0) @binding(0) var<uniform> params: CodecParams;
@group(0) @binding(1) var<storage, read> src: array<u32>;
@group(0) @binding(2) var<storage, read_write> dst: array<u32>;
@group(0) @binding(3) var<storage, read> side: PruneSide;

var<workgroup> w_ss: array<f32, LANES>;

fn keep(x: f32) -> f32 {
    return bitcast<f32>(bitcast<u32>(x) | params.zero);
}

fn fmul(a: f32, b: f32) -> f32 {
    return keep(a * b);
}

fn fadd(a: f32, b: f32) -> f32 {
    return keep(a + b);
}

fn fsub(a: f32, b: f32) -> f32 {
    return keep(a - b);
}

fn finite_bits(b: u32) -> bool {
    return (b & 0x7f800000u) != 0x7f800000u;
}

// The sum of squares of the `n` elements from `first`, given to every invocation of the
// workgroup: lane `lid` sums elements lid, lid + 256, .. left to right, then the lanes are
// added as a balanced tree (participation::sum_squares). Call in uniform control flow.
fn row_sum_squares(first: u32, n: u32, lid: u32) -> f32 {
    var acc = 0.0;
    for (var i = lid; i < n; i = i + LANES) {
        let x = bitcast<f32>(src[first + i]);
        acc = fadd(acc, fmul(x, x));
    }
    w_ss[lid] = acc;
    workgroupBarrier();
    for (var h = LANES / 2u; h > 0u; h = h / 2u) {
        if (lid < h) {
            w_ss[lid] = fadd(w_ss[lid], w_ss[lid + h]);
        }
        workgroupBarrier();
    }
    return w_ss[0];
}

// One step of the iteration (participation::iterate): `benefit` = alpha * b, `c2` = 2 beta e.
fn step(s: f32, benefit: f32, c2: f32, gamma: f32, lr: f32) -> f32 {
    let cost = fmul(c2, s);
    var l1 = 0.0;
    if (s > 0.0) {
        l1 = gamma;
    }
    var next = fadd(s, fmul(lr, fsub(fsub(benefit, cost), l1)));
    // f32::clamp: NaN passes through
    if (next < 0.0) {
        next = 0.0;
    }
    if (next > 1.0) {
        next = 1.0;
    }
    return next;
}

// The level after `iterations` steps from `init` of a player with benefit term `b` and
// energy `e` (both scaled); s stays in a register, the loop is unrolled by 8 (LOOP BUDGET).
fn iterate(b: f32, e: f32) -> f32 {
    let p = side.p;
    let benefit = fmul(p.alpha, b);
    let c2 = fmul(fmul(2.0, p.beta), e);
    var s = p.init;
    let n8 = p.iterations / 8u;
    for (var k = 0u; k < n8; k = k + 1u) {
        s = step(s, benefit, c2, p.gamma, p.lr);
        s = step(s, benefit, c2, p.gamma, p.lr);
        s = step(s, benefit, c2, p.gamma, p.lr);
        s = step(s, benefit, c2, p.gamma, p.lr);
        s = step(s, benefit, c2, p.gamma, p.lr);
        s = step(s, benefit, c2, p.gamma, p.lr);
        s = step(s, benefit, c2, p.gamma, p.lr);
        s = step(s, benefit, c2, p.gamma, p.lr);
    }
    for (var k = n8 * 8u; k < p.iterations; k = k + 1u) {
        s = step(s, benefit, c2, p.gamma, p.lr);
    }
    return s;
}

// Per-element scores, one workgroup per row: the row's sum of squares, its scale
// (participation::scale_of), then every element's iteration (participation::element_scores).
@compute @workgroup_size(LANES)
fn prune_elements(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                  @builtin(local_invocation_index) lid: u32) {
    let row = wid.x + wid.y * nwg.x;
    // uniform per workgroup: every invocation returns or none does
    if (row >= params.n_blocks) {
        return;
    }
    let n = params.row_len;
    let first = row * n;
    let ss = row_sum_squares(first, n, lid);
    // participation::scale_of: 0 for a zero or non-finite sum, or a quotient that overflows
    var scale = 0.0;
    if (ss > 0.0 && finite_bits(bitcast<u32>(ss))) {
        scale = soft_div(side.p.row_len_f, ss);
        if (!finite_bits(bitcast<u32>(scale))) {
            scale = 0.0;
        }
    }
    let is_signed = side.p.benefit == 1u;
    for (var i = lid; i < n; i = i + LANES) {
        let x = bitcast<f32>(src[first + i]);
        let e = fmul(fmul(x, x), scale);
        var b = e;
        if (is_signed) {
            b = fmul(fmul(abs(x), x), scale);
        }
        dst[params.dst_offset + first + i] = bitcast<u32>(iterate(b, e));
    }
}

// Group scores (participation::group_scores): one invocation per player, src its energy.
@compute @workgroup_size(WG)
fn prune_groups(@builtin(global_invocation_id) gid: vec3<u32>,
                @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_invocation(gid, nwg);
    if (i >= params.n_blocks) {
        return;
    }
    let e = bitcast<f32>(src[i]);
    dst[params.dst_offset + i] = bitcast<u32>(iterate(e, e));
}

// Per-row sums of squares (participation::energies' rows), one workgroup per row.
@compute @workgroup_size(LANES)
fn prune_row_energy(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                    @builtin(local_invocation_index) lid: u32) {
    let row = wid.x + wid.y * nwg.x;
    if (row >= params.n_blocks) {
        return;
    }
    let ss = row_sum_squares(row * params.row_len, params.row_len, lid);
    if (lid == 0u) {
        dst[params.dst_offset + row] = bitcast<u32>(ss);
    }
}

// Per-column sums of squares over the call's rows, top to bottom, continuing the running sums
// of earlier calls in `side.data` (participation::energies' columns). One invocation per
// column.
@compute @workgroup_size(WG)
fn prune_col_energy(@builtin(global_invocation_id) gid: vec3<u32>,
                    @builtin(num_workgroups) nwg: vec3<u32>) {
    let c = flat_invocation(gid, nwg);
    let n = params.row_len;
    if (c >= n) {
        return;
    }
    var acc = side.data[c];
    for (var r = 0u; r < params.n_blocks; r = r + 1u) {
        let x = bitcast<f32>(src[r * n + c]);
        acc = fadd(acc, fmul(x, x));
    }
    dst[params.dst_offset + c] = bitcast<u32>(acc);
}
