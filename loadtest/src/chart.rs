//! SVG charts with plotters: grouped bars and lines (with a min/max band and event markers).
//!
//! Plotters' SVG backend writes text as `<text>` elements, so no font files are needed; the
//! layout uses its built-in size estimate. Every chart's numbers are also written as a markdown
//! table by the experiment that draws it.

use std::path::Path;

use anyhow::{anyhow, Result};
use plotters::coord::ranged1d::{DefaultFormatting, KeyPointHint, Ranged};
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

/// Chart size in pixels.
const SIZE: (u32, u32) = (960, 540);
const FONT: &str = "sans-serif";

/// Colours that stay apart in print and for the common colour-vision deficiencies (Okabe–Ito).
const COLOURS: [RGBColor; 8] = [
    RGBColor(0, 114, 178),
    RGBColor(230, 159, 0),
    RGBColor(0, 158, 115),
    RGBColor(204, 121, 167),
    RGBColor(86, 180, 233),
    RGBColor(213, 94, 0),
    RGBColor(240, 228, 66),
    RGBColor(0, 0, 0),
];

/// The i-th series colour.
pub fn colour(i: usize) -> RGBColor {
    COLOURS[i % COLOURS.len()]
}

/// A linear f64 axis whose ticks sit exactly where we say (bar centres, the N of A-2), which
/// plotters' own f64 axis does not offer together with a label formatter.
#[derive(Clone, Debug)]
struct Ticked {
    lo: f64,
    hi: f64,
    ticks: Option<Vec<f64>>,
}

impl Ranged for Ticked {
    type FormatOption = DefaultFormatting;
    type ValueType = f64;

    fn map(&self, value: &f64, limit: (i32, i32)) -> i32 {
        let frac = (value - self.lo) / (self.hi - self.lo);
        limit.0 + (frac * f64::from(limit.1 - limit.0)).round() as i32
    }

    fn key_points<H: KeyPointHint>(&self, hint: H) -> Vec<f64> {
        if let Some(t) = &self.ticks {
            return t.clone();
        }
        let n = hint.max_num_points().max(2);
        let raw = (self.hi - self.lo) / n as f64;
        let mag = 10f64.powf(raw.log10().floor());
        let step = [1.0, 2.0, 5.0, 10.0]
            .iter()
            .map(|m| m * mag)
            .find(|s| *s >= raw)
            .unwrap_or(10.0 * mag);
        let mut x = (self.lo / step).ceil() * step;
        let mut out = Vec::new();
        while x <= self.hi + 1e-9 {
            out.push(x);
            x += step;
        }
        out
    }

    fn range(&self) -> std::ops::Range<f64> {
        self.lo..self.hi
    }
}

/// Y labels: integers for counts, two decimals for ratios.
fn fmt_y(y: &f64) -> String {
    if y.abs() >= 20.0 || y.fract() == 0.0 {
        format!("{y:.0}")
    } else {
        format!("{y:.2}")
    }
}

fn err<E: std::fmt::Display>(e: E) -> anyhow::Error {
    anyhow!("drawing a chart failed: {e}")
}

/// Bars: one group per x label, one bar per series in each group.
#[derive(Clone, Debug, Default)]
pub struct Bars {
    pub title: String,
    pub x_desc: String,
    pub y_desc: String,
    /// Group labels along x.
    pub groups: Vec<String>,
    /// (series name, one value per group).
    pub series: Vec<(String, Vec<f64>)>,
    /// A dashed horizontal reference line (e.g. the fair share), with its label.
    pub reference: Option<(String, f64)>,
    /// Print each bar's value above it, formatted with this many decimals.
    pub value_decimals: Option<usize>,
}

/// Draws `b` to `path`.
pub fn bars(path: &Path, b: &Bars) -> Result<()> {
    let root = SVGBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let n = b.groups.len().max(1);
    let k = b.series.len().max(1);
    let top = b
        .series
        .iter()
        .flat_map(|(_, v)| v.iter().copied())
        .chain(b.reference.iter().map(|r| r.1))
        .fold(0.0f64, f64::max)
        .max(1e-9)
        * 1.15;
    let centres: Vec<f64> = (0..n).map(|i| i as f64 + 0.5).collect();
    let groups = b.groups.clone();
    let fmt_x = move |x: &f64| groups.get(x.floor() as usize).cloned().unwrap_or_default();
    let mut chart = ChartBuilder::on(&root)
        .caption(&b.title, (FONT, 22))
        .margin(16)
        .x_label_area_size(44)
        .y_label_area_size(70)
        .build_cartesian_2d(
            Ticked {
                lo: 0.0,
                hi: n as f64,
                ticks: Some(centres),
            },
            0f64..top,
        )
        .map_err(err)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_desc(b.x_desc.as_str())
        .y_desc(b.y_desc.as_str())
        .x_label_formatter(&fmt_x)
        .y_label_formatter(&fmt_y)
        .max_light_lines(0)
        .label_style((FONT, 14))
        .axis_desc_style((FONT, 16))
        .draw()
        .map_err(err)?;
    let width = 0.8 / k as f64;
    for (s, (name, values)) in b.series.iter().enumerate() {
        let c = colour(s);
        let x0 = move |i: usize| i as f64 + 0.1 + s as f64 * width;
        let drawn = chart
            .draw_series(values.iter().enumerate().map(|(i, &v)| {
                Rectangle::new([(x0(i), 0.0), (x0(i) + width * 0.92, v)], c.filled())
            }))
            .map_err(err)?;
        if b.series.len() > 1 {
            drawn
                .label(name.as_str())
                .legend(move |(x, y)| Rectangle::new([(x, y - 6), (x + 12, y + 6)], c.filled()));
        }
        if let Some(d) = b.value_decimals {
            let style = TextStyle::from((FONT, if k > 2 { 10 } else { 13 }).into_font())
                .pos(Pos::new(HPos::Center, VPos::Bottom));
            chart
                .draw_series(values.iter().enumerate().map(|(i, &v)| {
                    Text::new(format!("{v:.d$}"), (x0(i) + width * 0.46, v), style.clone())
                }))
                .map_err(err)?;
        }
    }
    if let Some((label, y)) = &b.reference {
        let style = ShapeStyle::from(&RED).stroke_width(2);
        chart
            .draw_series(DashedLineSeries::new(
                [(0.0, *y), (n as f64, *y)],
                8,
                6,
                style,
            ))
            .map_err(err)?
            .label(label.as_str())
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 16, y)], style));
    }
    if b.series.len() > 1 || b.reference.is_some() {
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .label_font((FONT, 13))
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()
            .map_err(err)?;
    }
    root.present().map_err(err)?;
    Ok(())
}

/// One line of a [`Lines`] chart.
#[derive(Clone, Debug)]
pub struct Line {
    pub name: String,
    /// One value per x.
    pub values: Vec<f64>,
    pub dashed: bool,
}

/// A vertical marker at an x position (an event on a timeline).
#[derive(Clone, Debug)]
pub struct Marker {
    pub x: f64,
    pub label: String,
}

/// Lines over a shared x axis, with an optional shaded band and markers.
#[derive(Clone, Debug, Default)]
pub struct Lines {
    pub title: String,
    pub x_desc: String,
    pub y_desc: String,
    pub x: Vec<f64>,
    pub lines: Vec<Line>,
    /// (label, low values, high values): a shaded band, e.g. min..max per N.
    pub band: Option<(String, Vec<f64>, Vec<f64>)>,
    pub markers: Vec<Marker>,
    /// Tick positions along x (`None`: plotters chooses).
    pub x_ticks: Option<Vec<f64>>,
    /// Y axis from zero (else from the smallest value, with a margin).
    pub y_from_zero: bool,
    /// Draw a dot at every point.
    pub points: bool,
    /// Put the legend in the upper left corner (where rising lines leave room).
    pub legend_left: bool,
}

/// Draws `l` to `path`.
pub fn lines(path: &Path, l: &Lines) -> Result<()> {
    let root = SVGBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let all = l.lines.iter().flat_map(|s| s.values.iter().copied()).chain(
        l.band
            .iter()
            .flat_map(|b| b.1.iter().chain(b.2.iter()).copied()),
    );
    let (lo, hi) = all.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
        (a.min(v), b.max(v))
    });
    let (lo, hi) = if lo.is_finite() { (lo, hi) } else { (0.0, 1.0) };
    let pad = ((hi - lo) * 0.12).max(hi.abs() * 0.02).max(1e-9);
    let y0 = if l.y_from_zero { 0.0 } else { lo - pad };
    let y1 = hi + pad * if l.markers.is_empty() { 1.0 } else { 2.5 };
    let xmin = l.x.iter().copied().fold(f64::INFINITY, f64::min);
    let xmax = l.x.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let (xmin, xmax) = if xmin < xmax {
        (xmin, xmax)
    } else {
        (0.0, 1.0)
    };
    let xpad = if l.x_ticks.is_some() {
        (xmax - xmin) * 0.05
    } else {
        0.0
    };
    let auto = l.x_ticks.is_none();
    let mut chart = ChartBuilder::on(&root)
        .caption(&l.title, (FONT, 22))
        .margin(16)
        .x_label_area_size(44)
        .y_label_area_size(70)
        .build_cartesian_2d(
            Ticked {
                lo: xmin - xpad,
                hi: xmax + xpad,
                ticks: l.x_ticks.clone(),
            },
            y0..y1,
        )
        .map_err(err)?;
    let fmt_x = |x: &f64| {
        let s = format!("{x:.3}");
        s.trim_end_matches('0').trim_end_matches('.').to_owned()
    };
    let mut mesh = chart.configure_mesh();
    mesh.x_desc(l.x_desc.as_str())
        .y_desc(l.y_desc.as_str())
        .x_label_formatter(&fmt_x)
        .y_label_formatter(&fmt_y)
        .max_light_lines(0)
        .label_style((FONT, 14))
        .axis_desc_style((FONT, 16));
    if auto {
        mesh.x_labels(12);
    }
    mesh.draw().map_err(err)?;
    if let Some((label, low, high)) = &l.band {
        let c = colour(0).mix(0.18);
        let mut poly: Vec<(f64, f64)> = l.x.iter().copied().zip(low.iter().copied()).collect();
        poly.extend(l.x.iter().copied().zip(high.iter().copied()).rev());
        chart
            .draw_series(std::iter::once(Polygon::new(poly, c.filled())))
            .map_err(err)?
            .label(label.as_str())
            .legend(move |(x, y)| Rectangle::new([(x, y - 6), (x + 16, y + 6)], c.filled()));
    }
    for (i, s) in l.lines.iter().enumerate() {
        let c = colour(i);
        let style = ShapeStyle::from(&c).stroke_width(2);
        let pts: Vec<(f64, f64)> = l.x.iter().copied().zip(s.values.iter().copied()).collect();
        let drawn = if s.dashed {
            chart
                .draw_series(DashedLineSeries::new(pts.clone(), 8, 5, style))
                .map_err(err)?
        } else {
            chart
                .draw_series(LineSeries::new(pts.clone(), style))
                .map_err(err)?
        };
        drawn
            .label(s.name.as_str())
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 16, y)], style));
        if l.points {
            chart
                .draw_series(pts.iter().map(|&p| Circle::new(p, 3, c.filled())))
                .map_err(err)?;
        }
    }
    for (i, m) in l.markers.iter().enumerate() {
        let style = ShapeStyle::from(&BLACK.mix(0.7)).stroke_width(1);
        chart
            .draw_series(DashedLineSeries::new([(m.x, y0), (m.x, y1)], 4, 4, style))
            .map_err(err)?;
        // Stagger the labels so that markers close together stay readable.
        let y = y1 - (y1 - y0) * (0.03 + 0.06 * (i % 4) as f64);
        let text = TextStyle::from((FONT, 12).into_font()).pos(Pos::new(HPos::Left, VPos::Center));
        chart
            .draw_series(std::iter::once(Text::new(
                format!(" {}", m.label),
                (m.x, y),
                text,
            )))
            .map_err(err)?;
    }
    chart
        .configure_series_labels()
        .position(if l.legend_left {
            SeriesLabelPosition::UpperLeft
        } else {
            SeriesLabelPosition::UpperRight
        })
        .label_font((FONT, 13))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(err)?;
    root.present().map_err(err)?;
    Ok(())
}
