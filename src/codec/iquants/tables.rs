//! The tables the grid i-quants search and decode with, derived once from the packed grids in
//! [`super::grids`] (lazily, on first use, shared by every caller through `OnceLock`).
//!
//! [`SearchGrid`] is what ggml's `iq2xs_init_impl` (IQ2_XXS, IQ2_XS, IQ2_S, IQ1_S/IQ1_M) and
//! `iq3xs_init_impl` (IQ3_XXS, IQ3_S) build: each grid point as the encoders see it (element
//! `2*level + 1`), the map from a packed point of levels to its grid index, and for each point
//! of levels not on the grid the list of its nearest grid points: every grid point whose
//! squared distance (in `2*level + 1` units) is among the `nwant` smallest distinct distances,
//! ordered by (distance, index) as ggml's `qsort` with `iq2_compare_func` leaves them.
//! Only points whose levels the encoders can produce are given lists (IQ2/IQ1 levels 0..=2;
//! ggml also lists points with a level 3 that no encoder looks up).

use super::grids;
use std::sync::OnceLock;

/// Sentinel for "no list": offset 0 of [`SearchGrid::neighbours`] is an empty list.
const NO_LIST: i32 = -1;

/// One grid's search tables (`N` elements per point).
pub struct SearchGrid<const N: usize> {
    /// Grid point k, element i: `2*level + 1` (ggml's `kgrid_q2xs`/`kgrid_q3xs` bytes) as f32.
    pub q: Vec<[f32; N]>,
    /// Grid point k's levels.
    pub levels: Vec<[i8; N]>,
    /// ggml's `kmap_q2xs`/`kmap_q3xs`: for a packed point of levels `u`, its grid index
    /// (`>= 0`), else `-(offset + 1)` of its neighbour list in `neighbours`.
    pub map: Vec<i32>,
    /// ggml's `kneighbors_q2xs`/`kneighbors_q3xs`: lists of a count followed by grid indices.
    pub neighbours: Vec<u16>,
}

impl<const N: usize> SearchGrid<N> {
    /// The neighbour list (grid indices) of the off-grid point whose map entry is `m < 0`.
    #[inline(always)]
    pub fn neighbours_of(&self, m: i32) -> &[u16] {
        let off = (-m - 1) as usize;
        let n = self.neighbours.get(off).copied().unwrap_or(0) as usize;
        self.neighbours.get(off + 1..off + 1 + n).unwrap_or(&[])
    }
}

/// Builds the search tables of a grid packed `bits` bits per element, with neighbour lists
/// spanning `nwant` distinct distances (ggml's `nwant`).
fn build<const N: usize>(kgrid: &[u16], bits: u32, nwant: usize) -> SearchGrid<N> {
    let mask = (1u32 << bits) - 1;
    // ggml's kmap_size: 43692 for 8 elements of 2 bits, 4096 for 4 of 3.
    let kmap_size = if bits == 2 { 43692 } else { 4096 };
    let max_level = if bits == 2 { 2 } else { 7 };
    let levels_of = |p: u32| -> [i8; N] {
        let mut l = [0i8; N];
        for (i, li) in l.iter_mut().enumerate() {
            *li = ((p >> (bits * i as u32)) & mask) as i8;
        }
        l
    };
    let levels: Vec<[i8; N]> = kgrid.iter().map(|&p| levels_of(p as u32)).collect();
    let q: Vec<[f32; N]> = levels
        .iter()
        .map(|l| l.map(|v| (2 * v as i32 + 1) as f32))
        .collect();
    let mut map = vec![NO_LIST; kmap_size];
    for (k, &p) in kgrid.iter().enumerate() {
        map[p as usize] = k as i32;
    }
    let mut neighbours = vec![0u16];
    let mut d2 = vec![0i32; kgrid.len()];
    for i in 0..kmap_size {
        if map[i] >= 0 {
            continue;
        }
        let pos = levels_of(i as u32);
        if pos.iter().any(|&l| l as i32 > max_level) {
            continue;
        }
        for (j, g) in levels.iter().enumerate() {
            let mut d = 0i32;
            for k in 0..N {
                // (2a+1) - (2b+1) = 2(a-b)
                let diff = 2 * (g[k] as i32 - pos[k] as i32);
                d += diff * diff;
            }
            d2[j] = d;
        }
        // The nwant smallest distinct distances, ascending.
        let mut want: Vec<i32> = Vec::with_capacity(nwant);
        for &d in &d2 {
            if want.contains(&d) {
                continue;
            }
            if want.len() < nwant {
                want.push(d);
                want.sort_unstable();
            } else if d < want[nwant - 1] {
                want[nwant - 1] = d;
                want.sort_unstable();
            }
        }
        map[i] = -(neighbours.len() as i32 + 1);
        let start = neighbours.len();
        neighbours.push(0);
        for &w in &want {
            for (j, &d) in d2.iter().enumerate() {
                if d == w {
                    neighbours.push(j as u16);
                }
            }
        }
        neighbours[start] = (neighbours.len() - start - 1) as u16;
    }
    SearchGrid {
        q,
        levels,
        map,
        neighbours,
    }
}

/// Grid point k's element values for decoding (`values[level]`).
fn decode_table<const N: usize>(kgrid: &[u16], bits: u32, values: &[i8]) -> Vec<[f32; N]> {
    let mask = (1u32 << bits) - 1;
    kgrid
        .iter()
        .map(|&p| {
            let mut v = [0f32; N];
            for (i, vi) in v.iter_mut().enumerate() {
                *vi = values[((p as u32 >> (bits * i as u32)) & mask) as usize] as f32;
            }
            v
        })
        .collect()
}

macro_rules! lazy_tables {
    ($($search:ident, $decode:ident, $n:literal, $kgrid:path, $values:path, $bits:literal, $nwant:literal;)*) => {$(
        /// The search tables of this grid (built on first use).
        pub fn $search() -> &'static SearchGrid<$n> {
            static T: OnceLock<SearchGrid<$n>> = OnceLock::new();
            T.get_or_init(|| build(&$kgrid, $bits, $nwant))
        }
        /// ggml's decoding grid (`iq2xxs_grid` …) as f32 element values (built on first use).
        pub fn $decode() -> &'static [[f32; $n]] {
            static T: OnceLock<Vec<[f32; $n]>> = OnceLock::new();
            T.get_or_init(|| decode_table(&$kgrid, $bits, &$values))
        }
    )*};
}

// nwant as in iq2xs_init_impl (IQ1_S/IQ1_M 3, IQ2_S 1, else 2) and iq3xs_init_impl (256: 2,
// 512: 3).
lazy_tables! {
    iq2xxs_search, iq2xxs_grid, 8, grids::IQ2XXS_KGRID, grids::IQ2XXS_VALUES, 2, 2;
    iq2xs_search, iq2xs_grid, 8, grids::IQ2XS_KGRID, grids::IQ2XS_VALUES, 2, 2;
    iq2s_search, iq2s_grid, 8, grids::IQ2S_KGRID, grids::IQ2S_VALUES, 2, 1;
    iq1s_search, iq1s_grid, 8, grids::IQ1S_KGRID, grids::IQ1S_VALUES, 2, 3;
    iq3xxs_search, iq3xxs_grid, 4, grids::IQ3XXS_KGRID, grids::IQ3XXS_VALUES, 3, 2;
    iq3s_search, iq3s_grid, 4, grids::IQ3S_KGRID, grids::IQ3S_VALUES, 3, 3;
}

/// ggml's `iq2_find_best_neighbour` (N = 8) and `iq3_find_best_neighbour` (N = 4): the grid
/// point among `neighbours` nearest to `xval` at `scale` in `weight`-ed squared distance (the
/// first of equals); writes its levels to `l` and returns its index.
#[inline(always)]
pub fn find_best_neighbour<const N: usize>(
    grid: &SearchGrid<N>,
    neighbours: &[u16],
    xval: &[f32],
    weight: &[f32],
    scale: f32,
    l: &mut [i8],
) -> usize {
    let (xval, weight) = (&xval[..N], &weight[..N]);
    let mut best_d2 = f32::MAX;
    let mut grid_index = neighbours.first().copied().unwrap_or(0) as usize;
    for &nb in neighbours {
        let pg = &grid.q[nb as usize];
        let mut d2 = 0.0f32;
        for i in 0..N {
            let diff = scale * pg[i] - xval[i];
            d2 += weight[i] * diff * diff;
        }
        if d2 < best_d2 {
            best_d2 = d2;
            grid_index = nb as usize;
        }
    }
    l[..N].copy_from_slice(&grid.levels[grid_index]);
    grid_index
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_grid_point_maps_to_itself() {
        let g = iq2s_search();
        for (k, l) in g.levels.iter().enumerate() {
            let u: usize = l
                .iter()
                .enumerate()
                .map(|(i, &v)| (v as usize) << (2 * i))
                .sum();
            assert_eq!(g.map[u], k as i32);
        }
        let g = iq3s_search();
        for (k, l) in g.levels.iter().enumerate() {
            let u: usize = l
                .iter()
                .enumerate()
                .map(|(i, &v)| (v as usize) << (3 * i))
                .sum();
            assert_eq!(g.map[u], k as i32);
        }
    }

    #[test]
    fn off_grid_points_have_nearest_neighbours() {
        let g = iq2xxs_search();
        // levels 0..=2 everywhere: 3^8 points
        let mut n_off = 0;
        for i in 0..43692usize {
            if (0..8).any(|k| (i >> (2 * k)) & 3 == 3) || g.map[i] >= 0 {
                continue;
            }
            n_off += 1;
            let nb = g.neighbours_of(g.map[i]);
            assert!(!nb.is_empty(), "{i}");
        }
        assert_eq!(n_off, 6561 - 256);
    }
}
