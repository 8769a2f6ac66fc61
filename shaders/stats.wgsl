// gpuq: weight statistics of a tile of rows (CPU twins: stats::fast, spec: stats::reference).
//
// Binding layout: the codec layout of gpu::kernels (Layout::Codec), read as follows:
//   params.n_blocks       segments in the tile (rows * segs_per_row)
//   params.n_groups       elements per segment (seg_len; the last segment of a row is shorter)
//   params.row_len        elements per row
//   params.blocks_per_row segments per row
//   src                   the tile's f32 elements as bits
//   dst                   one record per segment (layouts below)
//   weights               stats_counts: per row, [rms, k * rms] (computed by the host);
//                         stats_error: the decoded tile y (f32), element for element with src
//
// One workgroup per segment (flat over a 2-D dispatch). WG must be a power of two <= 256.
// Each invocation sums at most seg_len / WG elements left to right, then the workgroup adds
// the partial sums as a balanced tree in workgroup memory: the rounding error of a segment's
// sum is bounded by (seg_len / WG + log2 WG) ulp, whatever a compiler does with fusing, and the
// host combines segments and rows with compensated sums. No f64, no 64-bit atomics, no
// subgroup operations. Classification (NaN, Inf, zero) uses the bits, so a fast-math compiler
// that assumes finite values cannot drop it.

const MAX_WG: u32 = 256u;
// Largest finite f32: the min/max identity (WGSL constant expressions may not be infinite).
const BIG: f32 = 3.40282347e38;
const HIST_BINS: u32 = 66u;
// Record of stats_moments: sum, sum_abs, sum_sq, min, max (f32 bits), finite, zeros, nan, inf.
const MOMENTS_WORDS: u32 = 9u;
// Record of stats_counts: 66 histogram bins, then the outlier count.
const COUNTS_WORDS: u32 = 67u;
// Record of stats_error: sum (x-y)^2, sum x^2, sum y^2, sum xy, max |x-y| (f32 bits), pairs
// compared, poisoned (finite x whose y is NaN/Inf).
const ERROR_WORDS: u32 = 7u;

@group(0) @binding(0) var<uniform> params: CodecParams;
@group(0) @binding(1) var<storage, read> src: array<u32>;
@group(0) @binding(2) var<storage, read_write> dst: array<u32>;
@group(0) @binding(3) var<storage, read> weights: array<f32>;

var<workgroup> w_sum: array<f32, MAX_WG>;
var<workgroup> w_abs: array<f32, MAX_WG>;
var<workgroup> w_sq: array<f32, MAX_WG>;
var<workgroup> w_min: array<f32, MAX_WG>;
var<workgroup> w_max: array<f32, MAX_WG>;
var<workgroup> w_cnt: array<vec4<u32>, MAX_WG>;
var<workgroup> w_xy: array<f32, MAX_WG>;
var<workgroup> w_hist: array<atomic<u32>, COUNTS_WORDS>;

fn is_finite_bits(b: u32) -> bool {
    return (b & 0x7f800000u) != 0x7f800000u;
}

// [first, end) element indices of segment `s` of the tile.
fn segment(s: u32) -> vec2<u32> {
    let row = s / params.blocks_per_row;
    let seg = s % params.blocks_per_row;
    let row_start = row * params.row_len;
    let first = row_start + seg * params.n_groups;
    let end = min(first + params.n_groups, row_start + params.row_len);
    return vec2<u32>(first, end);
}

@compute @workgroup_size(WG)
fn stats_moments(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                 @builtin(local_invocation_index) lid: u32) {
    let s = wid.x + wid.y * nwg.x;
    // uniform per workgroup: every invocation returns or none does
    if (s >= params.n_blocks) {
        return;
    }
    let r = segment(s);
    var sum = 0.0;
    var sabs = 0.0;
    var sq = 0.0;
    var mn = BIG;
    var mx = -BIG;
    var cnt = vec4<u32>(0u); // finite, zeros, nan, inf
    for (var i = r.x + lid; i < r.y; i = i + WG) {
        let b = src[i];
        if (is_finite_bits(b)) {
            let w = bitcast<f32>(b);
            sum = sum + w;
            sabs = sabs + abs(w);
            sq = sq + w * w;
            mn = min(mn, w);
            mx = max(mx, w);
            cnt.x = cnt.x + 1u;
            if ((b & 0x7fffffffu) == 0u) {
                cnt.y = cnt.y + 1u;
            }
        } else if (is_nan_bits(b)) {
            cnt.z = cnt.z + 1u;
        } else {
            cnt.w = cnt.w + 1u;
        }
    }
    w_sum[lid] = sum;
    w_abs[lid] = sabs;
    w_sq[lid] = sq;
    w_min[lid] = mn;
    w_max[lid] = mx;
    w_cnt[lid] = cnt;
    workgroupBarrier();
    for (var stride = WG / 2u; stride > 0u; stride = stride / 2u) {
        if (lid < stride) {
            w_sum[lid] = w_sum[lid] + w_sum[lid + stride];
            w_abs[lid] = w_abs[lid] + w_abs[lid + stride];
            w_sq[lid] = w_sq[lid] + w_sq[lid + stride];
            w_min[lid] = min(w_min[lid], w_min[lid + stride]);
            w_max[lid] = max(w_max[lid], w_max[lid + stride]);
            w_cnt[lid] = w_cnt[lid] + w_cnt[lid + stride];
        }
        workgroupBarrier();
    }
    if (lid == 0u) {
        let o = params.dst_offset + s * MOMENTS_WORDS;
        dst[o] = bitcast<u32>(w_sum[0]);
        dst[o + 1u] = bitcast<u32>(w_abs[0]);
        dst[o + 2u] = bitcast<u32>(w_sq[0]);
        dst[o + 3u] = bitcast<u32>(w_min[0]);
        dst[o + 4u] = bitcast<u32>(w_max[0]);
        dst[o + 5u] = w_cnt[0].x;
        dst[o + 6u] = w_cnt[0].y;
        dst[o + 7u] = w_cnt[0].z;
        dst[o + 8u] = w_cnt[0].w;
    }
}

// Histogram bin of x = w / rms (stats::hist_bin): 0 below -8, 1..64 of width 0.25, 65 at >= 8.
fn hist_bin(x: f32) -> u32 {
    let t = floor((x + 8.0) * 4.0);
    if (t < 0.0) {
        return 0u;
    }
    if (t >= 64.0) {
        return HIST_BINS - 1u;
    }
    return u32(t) + 1u;
}

@compute @workgroup_size(WG)
fn stats_counts(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_index) lid: u32) {
    let s = wid.x + wid.y * nwg.x;
    if (s >= params.n_blocks) {
        return;
    }
    // workgroup memory is not zero-initialised by the pipeline: clear it
    for (var j = lid; j < COUNTS_WORDS; j = j + WG) {
        atomicStore(&w_hist[j], 0u);
    }
    workgroupBarrier();
    let r = segment(s);
    let row = s / params.blocks_per_row;
    let rms = weights[2u * row];
    let thr = weights[2u * row + 1u];
    var outliers = 0u;
    for (var i = r.x + lid; i < r.y; i = i + WG) {
        let b = src[i];
        if (is_finite_bits(b)) {
            let w = bitcast<f32>(b);
            if (abs(w) > thr) {
                outliers = outliers + 1u;
            }
            var x = 0.0;
            if (rms > 0.0) {
                x = w / rms;
            }
            atomicAdd(&w_hist[hist_bin(x)], 1u);
        }
    }
    atomicAdd(&w_hist[HIST_BINS], outliers);
    workgroupBarrier();
    for (var j = lid; j < COUNTS_WORDS; j = j + WG) {
        dst[params.dst_offset + s * COUNTS_WORDS + j] = atomicLoad(&w_hist[j]);
    }
}

// Quantization error of a tile (CPU twin: stats::error::tile_error): src is the source x,
// weights the round trip y = decode(encode(x)). Pairs with a non-finite x are skipped; a
// finite x whose y is not finite counts as poisoned and is skipped too.
@compute @workgroup_size(WG)
fn stats_error(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_index) lid: u32) {
    let s = wid.x + wid.y * nwg.x;
    if (s >= params.n_blocks) {
        return;
    }
    let r = segment(s);
    var sse = 0.0;
    var sxx = 0.0;
    var syy = 0.0;
    var sxy = 0.0;
    var mx = 0.0;
    var cnt = vec4<u32>(0u); // pairs, poisoned
    for (var i = r.x + lid; i < r.y; i = i + WG) {
        let bx = src[i];
        if (!is_finite_bits(bx)) {
            continue;
        }
        let y = weights[i];
        if (!is_finite_bits(bitcast<u32>(y))) {
            cnt.y = cnt.y + 1u;
            continue;
        }
        let x = bitcast<f32>(bx);
        let d = x - y;
        sse = sse + d * d;
        sxx = sxx + x * x;
        syy = syy + y * y;
        sxy = sxy + x * y;
        mx = max(mx, abs(d));
        cnt.x = cnt.x + 1u;
    }
    w_sum[lid] = sse;
    w_abs[lid] = sxx;
    w_sq[lid] = syy;
    w_xy[lid] = sxy;
    w_max[lid] = mx;
    w_cnt[lid] = cnt;
    workgroupBarrier();
    for (var stride = WG / 2u; stride > 0u; stride = stride / 2u) {
        if (lid < stride) {
            w_sum[lid] = w_sum[lid] + w_sum[lid + stride];
            w_abs[lid] = w_abs[lid] + w_abs[lid + stride];
            w_sq[lid] = w_sq[lid] + w_sq[lid + stride];
            w_xy[lid] = w_xy[lid] + w_xy[lid + stride];
            w_max[lid] = max(w_max[lid], w_max[lid + stride]);
            w_cnt[lid] = w_cnt[lid] + w_cnt[lid + stride];
        }
        workgroupBarrier();
    }
    if (lid == 0u) {
        let o = params.dst_offset + s * ERROR_WORDS;
        dst[o] = bitcast<u32>(w_sum[0]);
        dst[o + 1u] = bitcast<u32>(w_abs[0]);
        dst[o + 2u] = bitcast<u32>(w_sq[0]);
        dst[o + 3u] = bitcast<u32>(w_xy[0]);
        dst[o + 4u] = bitcast<u32>(w_max[0]);
        dst[o + 5u] = w_cnt[0].x;
        dst[o + 6u] = w_cnt[0].y;
    }
}
