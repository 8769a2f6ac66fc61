//! The `gpuq stats --plot` figure (plotters): relative quantization error per layer, one line
//! per type (log scale), above the `absmax / absmean` ratio per layer, so the layers where
//! outliers stretch the scales stand out. `.svg` or `.png`, chosen by the file extension.
//!
//! Text is laid out with ab_glyph from a TrueType font found on the system (DejaVu, Liberation,
//! Noto, Arial…) or named by the `GPUQ_FONT` environment variable; plotters' `ttf` feature would
//! need fontconfig and freetype, which gpuq does not want to depend on.

use super::report::LayerSummary;
use crate::error::{Error, Result};
use crate::ggml_type::GgmlType;
use plotters::coord::Shift;
use plotters::prelude::*;
use std::path::Path;
use std::sync::OnceLock;

/// Axis and panel labels (tests look for them in the SVG).
pub const X_LABEL: &str = "layer";
pub const ERROR_Y_LABEL: &str = "relative error |W - Q(W)| / |W| (log scale)";
pub const RATIO_Y_LABEL: &str = "absmax / absmean";
const FONT: &str = "sans-serif";

/// Line colours, one per type (distinct on white, colour-blind friendly first).
const LINE_COLORS: &[RGBColor] = &[
    RGBColor(213, 94, 0),
    RGBColor(0, 114, 178),
    RGBColor(0, 158, 115),
    RGBColor(204, 121, 167),
    RGBColor(230, 159, 0),
    RGBColor(86, 180, 233),
    RGBColor(0, 0, 0),
    RGBColor(150, 150, 150),
];

const FONT_PATHS: &[&str] = &[
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu-sans-fonts/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
    "/usr/share/fonts/liberation-sans/LiberationSans-Regular.ttf",
    "/usr/share/fonts/truetype/noto/NotoSans-Regular.ttf",
    "/usr/share/fonts/noto/NotoSans-Regular.ttf",
    "/System/Library/Fonts/Supplemental/Arial.ttf",
    "/Library/Fonts/Arial.ttf",
    "C:\\Windows\\Fonts\\arial.ttf",
];

/// Registers a system font with plotters once; the error says how to provide one.
fn ensure_font() -> std::result::Result<(), String> {
    static DONE: OnceLock<std::result::Result<(), String>> = OnceLock::new();
    DONE.get_or_init(|| {
        let env = std::env::var("GPUQ_FONT").ok();
        let candidates = env
            .iter()
            .map(String::as_str)
            .chain(FONT_PATHS.iter().copied());
        for p in candidates {
            if let Ok(bytes) = std::fs::read(p) {
                let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
                if plotters::style::register_font(FONT, FontStyle::Normal, bytes).is_ok() {
                    return Ok(());
                }
            }
        }
        Err("no TrueType font found for the plot's text; set GPUQ_FONT=/path/to/font.ttf".into())
    })
    .clone()
}

/// Draws the per-layer figure to `path` (`.svg` or `.png`). `layers` without a layer number
/// (embeddings, output) are left out.
pub fn plot_layers(
    path: &Path,
    layers: &[LayerSummary],
    types: &[GgmlType],
    title: &str,
) -> Result<()> {
    let fail = |m: String| Error::Invalid(format!("{}: plot: {m}", path.display()));
    let layers: Vec<&LayerSummary> = layers.iter().filter(|l| l.layer.is_some()).collect();
    if layers.is_empty() {
        return Err(fail("the model has no blk.N. layers to plot".into()));
    }
    ensure_font().map_err(fail)?;
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    let size = (1200, if types.is_empty() { 450 } else { 900 });
    match ext.as_deref() {
        Some("svg") => {
            let root = SVGBackend::new(path, size).into_drawing_area();
            draw(&root, &layers, types, title).map_err(fail)?;
            root.present().map_err(|e| fail(e.to_string()))
        }
        Some("png") => {
            let root = BitMapBackend::new(path, size).into_drawing_area();
            draw(&root, &layers, types, title).map_err(fail)?;
            root.present().map_err(|e| fail(e.to_string()))
        }
        _ => Err(fail("the file name must end in .svg or .png".into())),
    }
}

fn draw<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    layers: &[&LayerSummary],
    types: &[GgmlType],
    title: &str,
) -> std::result::Result<(), String> {
    let e = |x: DrawingAreaErrorKind<DB::ErrorType>| x.to_string();
    root.fill(&WHITE).map_err(e)?;
    let root = root.titled(title, (FONT, 22)).map_err(e)?;
    let last = layers.iter().filter_map(|l| l.layer).max().unwrap_or(0) as f64;
    let xs = -0.5..last + 0.5;
    let n_xlabels = (last as usize + 1).min(24);
    let xfmt = |x: &f64| {
        if (x - x.round()).abs() < 1e-6 && *x >= 0.0 {
            format!("{}", x.round())
        } else {
            String::new()
        }
    };
    let (top, bottom) = if types.is_empty() {
        (None, root.clone())
    } else {
        let (a, b) = root.split_vertically(root.dim_in_pixel().1 / 2);
        (Some(a), b)
    };

    if let Some(top) = top {
        let mut lo = f64::INFINITY;
        let mut hi: f64 = 0.0;
        for l in layers {
            for &ty in types {
                if let Some(v) = l
                    .error(ty)
                    .map(|a| a.metrics().rel_frobenius)
                    .filter(|v| *v > 0.0 && v.is_finite())
                {
                    lo = lo.min(v);
                    hi = hi.max(v);
                }
            }
        }
        if !lo.is_finite() {
            (lo, hi) = (1e-4, 1.0);
        }
        let mut chart = ChartBuilder::on(&top)
            .caption(
                "quantization error per layer (energy-weighted over the layer's matrices)",
                (FONT, 18),
            )
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(70)
            .build_cartesian_2d(xs.clone(), (lo / 1.3).log10()..(hi * 2.2).log10())
            .map_err(e)?;
        chart
            .configure_mesh()
            .x_desc(X_LABEL)
            .y_desc(ERROR_Y_LABEL)
            .x_labels(n_xlabels)
            .x_label_formatter(&xfmt)
            .y_labels(12)
            .y_label_formatter(&|y| sig2(10f64.powf(*y)))
            .label_style((FONT, 14))
            .draw()
            .map_err(e)?;
        for (i, &ty) in types.iter().enumerate() {
            let color = LINE_COLORS[i % LINE_COLORS.len()];
            let pts: Vec<(f64, f64)> = layers
                .iter()
                .filter_map(|l| Some((l.layer? as f64, l.error(ty)?.metrics().rel_frobenius)))
                .filter(|(_, v)| *v > 0.0 && v.is_finite())
                .map(|(x, v)| (x, v.log10()))
                .collect();
            chart
                .draw_series(LineSeries::new(pts.iter().copied(), color.stroke_width(2)))
                .map_err(e)?
                .label(ty.name())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
                });
            chart
                .draw_series(pts.iter().map(|&p| Circle::new(p, 3, color.filled())))
                .map_err(e)?;
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .label_font((FONT, 14))
            .draw()
            .map_err(e)?;
    }

    let pts: Vec<(f64, f64)> = layers
        .iter()
        .filter_map(|l| Some((l.layer? as f64, l.peak_ratio)))
        .filter(|(_, v)| v.is_finite())
        .collect();
    let hi = pts.iter().map(|p| p.1).fold(1.0, f64::max);
    let mut chart = ChartBuilder::on(&bottom)
        .caption(
            "absmax / absmean per layer (largest over the layer's matrices)",
            (FONT, 18),
        )
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(xs, 0.0..hi * 1.1)
        .map_err(e)?;
    chart
        .configure_mesh()
        .x_desc(X_LABEL)
        .y_desc(RATIO_Y_LABEL)
        .x_labels(n_xlabels)
        .x_label_formatter(&xfmt)
        .label_style((FONT, 14))
        .draw()
        .map_err(e)?;
    let color = RGBColor(60, 60, 60);
    chart
        .draw_series(LineSeries::new(pts.iter().copied(), color.stroke_width(2)))
        .map_err(e)?
        .label(RATIO_Y_LABEL)
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
    chart
        .draw_series(pts.iter().map(|&p| Circle::new(p, 3, color.filled())))
        .map_err(e)?;
    Ok(())
}

/// `y` with two significant digits, in plain notation (log-axis tick labels).
fn sig2(y: f64) -> String {
    if !(y.is_finite() && y > 0.0) {
        return format!("{y}");
    }
    let decimals = (1 - y.log10().floor() as i32).max(0) as usize;
    format!("{y:.decimals$}")
}
