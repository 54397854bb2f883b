//! Inline SVG charts for the HTML report, drawn here so the file needs no script and fetches
//! nothing. Time charts have one slot per time slice and one hover target per slice (an SVG
//! `<title>` tooltip with every value of that slice); the latency distribution has percentiles
//! on a `1/(1-p)` log axis, as HdrHistogram plots do. Every chart has a title (its accessible
//! name), a titled y axis with units on its ticks, and a legend beside it in the page.
//!
//! The builders take any number of series, each solid or dashed: a second run (a baseline, or
//! the B side of an A/B run) is drawn dashed in the same colour beside the first.
//!
//! Whatever the values (none, one, huge), a builder returns a whole `<svg>`: values are clamped
//! to [`MAX_VALUE`], and tick loops are bounded.

use std::fmt::Write;

/// A chart's drawing size, in SVG units (the page scales it to its column).
#[derive(Debug, Clone, Copy)]
pub struct Size {
    pub width: f64,
    pub height: f64,
}

/// A chart across the page.
pub const WIDE: Size = Size { width: 1080.0, height: 260.0 };
/// One of two charts side by side.
pub const HALF: Size = Size { width: 530.0, height: 210.0 };

const LEFT: f64 = 78.0;
const RIGHT: f64 = 16.0;
const TOP: f64 = 12.0;
const BOTTOM: f64 = 40.0;
/// Larger values are drawn as this (a latency is clamped to an hour long before).
pub const MAX_VALUE: f64 = 1e12;
const MAX_TICKS: usize = 12;

/// What a chart is called and how its y axis reads.
pub struct Chart<'a> {
    /// The chart's accessible name (SVG `<title>`).
    pub title: &'a str,
    /// The y axis's title, e.g. `latency`.
    pub y_title: &'a str,
    /// After each y tick's number, e.g. ` ms`, `/s`, `%`.
    pub unit: &'a str,
    pub size: Size,
}

/// One line of a line chart; `None` values break the line.
pub struct Line<'a> {
    pub name: &'a str,
    pub color: &'a str,
    pub values: Vec<Option<f64>>,
    pub dashed: bool,
}

/// One layer of a stacked bar chart.
pub struct Layer<'a> {
    pub name: &'a str,
    pub color: &'a str,
    pub values: Vec<f64>,
}

/// How stacked bars are scaled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stack {
    /// Each slice's bar is its layers' shares (0–100%).
    Share,
    /// Each slice's bar is its layers' counts.
    Count,
}

/// One latency distribution: `(quantile 0–1, ms)` points in order of quantile.
pub struct Curve<'a> {
    pub name: &'a str,
    pub color: &'a str,
    pub points: &'a [(f64, f64)],
    pub dashed: bool,
}

/// The time axis: one equal slot per slice, in order. Within a run the slices are contiguous (empty
/// ones are filled in), so this is plain time; between separate runs (files far apart) the empty
/// time is left out and a dashed line marks the gap.
pub struct TimeAxis<'a> {
    /// Slice starts, ms since the epoch; or, with `since_start`, since the run's start.
    pub starts_ms: &'a [i64],
    /// Two runs drawn together line up on their time since their start, not on the clock.
    pub since_start: bool,
    pub interval_ms: i64,
    /// One tooltip per slice.
    pub tooltips: &'a [String],
}

/// Where a chart's plot area is, and how its y values map into it.
struct Plot {
    size: Size,
    y: YScale,
}

#[derive(Debug, Clone, Copy)]
enum YScale {
    /// From 0 to `max`, ticks every `step`.
    Linear { max: f64, step: f64 },
    /// Powers of ten from `10^low` to `10^high`.
    Log { low: i32, high: i32 },
}

impl Plot {
    fn left(&self) -> f64 {
        LEFT
    }

    fn right(&self) -> f64 {
        self.size.width - RIGHT
    }

    fn bottom(&self) -> f64 {
        self.size.height - BOTTOM
    }

    fn y(&self, v: f64) -> f64 {
        let v = clamp(v);
        let share = match self.y {
            YScale::Linear { max, .. } => v / max,
            YScale::Log { low, high } => {
                (v.max(10f64.powi(low)).log10() - f64::from(low)) / f64::from((high - low).max(1))
            }
        };
        TOP + (1.0 - share.clamp(0.0, 1.0)) * (self.bottom() - TOP)
    }

    /// Each y tick's value and its text (without the unit).
    fn y_ticks(&self) -> Vec<(f64, String)> {
        match self.y {
            YScale::Linear { max, step } => (0..=MAX_TICKS)
                .map(|i| i as f64 * step)
                .take_while(|v| *v <= max * (1.0 + 1e-9))
                .map(|v| (v, number(v, step)))
                .collect(),
            YScale::Log { low, high } => {
                let decades = (high - low).max(1);
                // Label 1, 2 and 5 of each decade while they fit; fewer as decades add up.
                let mantissas: &[f64] = if decades <= 2 { &[1.0, 2.0, 5.0] } else { &[1.0] };
                let every = (decades as usize).div_ceil(MAX_TICKS).max(1);
                (low..=high)
                    .step_by(every)
                    .flat_map(|e| mantissas.iter().map(move |m| m * 10f64.powi(e)))
                    .filter(|v| *v <= 10f64.powi(high) * (1.0 + 1e-9))
                    .map(|v| (v, number(v, v)))
                    .collect()
            }
        }
    }
}

fn clamp(v: f64) -> f64 {
    if v.is_nan() { 0.0 } else { v.clamp(-MAX_VALUE, MAX_VALUE) }
}

/// `v` with as many decimals as `step` needs (`0.25`, `2.5`, `300`), without float noise.
fn number(v: f64, step: f64) -> String {
    let decimals = (0..6).find(|d| ((step * 10f64.powi(*d)).round() - step * 10f64.powi(*d)).abs() < 1e-6).unwrap_or(6);
    format!("{:.*}", decimals as usize, v)
}

/// A linear scale from 0 with round ticks that the largest value nearly fills.
fn linear(data_max: f64) -> YScale {
    let data_max = clamp(data_max);
    if data_max <= 0.0 {
        return YScale::Linear { max: 1.0, step: 0.25 };
    }
    let max = nice_ceiling(data_max);
    YScale::Linear { max, step: nice_step(max, 4.0) }
}

impl TimeAxis<'_> {
    fn title(&self) -> &'static str {
        if self.since_start { "time since each run's start" } else { "time (UTC)" }
    }

    fn slot(&self, plot: &Plot) -> f64 {
        (plot.right() - plot.left()) / self.starts_ms.len().max(1) as f64
    }

    /// The x of a slice's left edge.
    fn left(&self, plot: &Plot, i: usize) -> f64 {
        plot.left() + i as f64 * self.slot(plot)
    }

    /// The x of a slice's middle.
    fn mid(&self, plot: &Plot, i: usize) -> f64 {
        self.left(plot, i) + self.slot(plot) / 2.0
    }

    /// Whether time was skipped just before slice `i`.
    fn gap_before(&self, i: usize) -> bool {
        i > 0 && i < self.starts_ms.len() && self.starts_ms[i].saturating_sub(self.starts_ms[i - 1]) != self.interval_ms
    }

    /// Slices that get a time label: those starting on a round step (1s, 5s, 1m, …), or every
    /// k-th when the slice length does not divide into such steps; fewer on a narrow chart.
    fn ticks(&self, size: Size) -> (Vec<usize>, i64) {
        let n = self.starts_ms.len();
        let labels = if size.width < WIDE.width { 4.0 } else { 8.0 };
        let step = time_step_ms(n as f64 * self.interval_ms.max(1) as f64, labels).max(self.interval_ms.max(1));
        let round: Vec<usize> = (0..n).filter(|&i| self.starts_ms[i].rem_euclid(step) == 0).collect();
        if (round.len() >= 2 || n < 4) && round.len() <= 2 * labels as usize {
            return (round, step);
        }
        let every = n.div_ceil(labels as usize).max(1);
        ((0..n).step_by(every).collect(), step)
    }
}

/// A step of 1, 2 or 5 × 10^k giving about `count` ticks up to `max`.
fn nice_step(max: f64, count: f64) -> f64 {
    let raw = (max / count).max(f64::MIN_POSITIVE);
    let magnitude = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 2.5, 5.0, 10.0].iter().map(|m| m * magnitude).find(|s| *s >= raw).unwrap_or(10.0 * magnitude);
    if step > 0.0 && step.is_finite() { step } else { 1.0 }
}

fn nice_ceiling(max: f64) -> f64 {
    if max <= 0.0 {
        return 1.0;
    }
    // A fine step for the ceiling, so the data fills most of the height.
    let step = nice_step(max * 1.08, 10.0);
    (max * 1.08 / step).ceil() * step
}

/// Time ticks at a step people read (1s, 5s, 1m, 10m, 1h …) giving about `labels` ticks.
fn time_step_ms(span_ms: f64, labels: f64) -> i64 {
    const STEPS: [i64; 18] = [
        100, 200, 500, 1_000, 2_000, 5_000, 10_000, 15_000, 30_000, 60_000, 120_000, 300_000, 600_000, 900_000,
        1_800_000, 3_600_000, 7_200_000, 21_600_000,
    ];
    STEPS.iter().copied().find(|s| span_ms / *s as f64 <= labels).unwrap_or(86_400_000)
}

/// `+0:30`, `+1:02:00`, `+0:01.5`: time since a run's start.
pub fn elapsed_label(ms: i64, step_ms: i64) -> String {
    let sign = if ms < 0 { "-" } else { "+" };
    let ms = ms.unsigned_abs();
    let (h, m, s) = (ms / 3_600_000, ms / 60_000 % 60, ms / 1000 % 60);
    let tenths = if step_ms < 1_000 { format!(".{}", ms / 100 % 10) } else { String::new() };
    if h > 0 { format!("{sign}{h}:{m:02}:{s:02}{tenths}") } else { format!("{sign}{m}:{s:02}{tenths}") }
}

fn time_label(ms: i64, step_ms: i64) -> String {
    let t = chrono::DateTime::from_timestamp_millis(ms).unwrap_or_default();
    if step_ms < 1_000 {
        t.format("%H:%M:%S%.1f").to_string()
    } else if step_ms >= 21_600_000 {
        t.format("%m-%d %H:%M").to_string()
    } else {
        t.format("%H:%M:%S").to_string()
    }
}

/// `<svg>` with its accessible name, the y grid and ticks, and both axis titles.
fn open(out: &mut String, chart: &Chart<'_>, plot: &Plot, x_title: &str) {
    let Size { width, height } = chart.size;
    let title = super::html::escape(chart.title);
    let _ = write!(
        out,
        r#"<svg class="chart" viewBox="0 0 {width} {height}" width="100%" preserveAspectRatio="xMidYMid meet" role="img" aria-label="{title}"><title>{title}</title>"#
    );
    for (v, text) in plot.y_ticks() {
        let y = plot.y(v);
        let _ = write!(
            out,
            r##"<line x1="{}" x2="{}" y1="{y:.1}" y2="{y:.1}" stroke="#e3e6ea"/><text x="{}" y="{:.1}" class="tick" text-anchor="end">{text}{}</text>"##,
            plot.left(),
            plot.right(),
            plot.left() - 6.0,
            y + 4.0,
            super::html::escape(chart.unit)
        );
    }
    let middle = (TOP + plot.bottom()) / 2.0;
    let _ = write!(
        out,
        r##"<text class="axis" x="14" y="{middle:.1}" text-anchor="middle" transform="rotate(-90 14 {middle:.1})">{}</text><text class="axis" x="{:.1}" y="{}" text-anchor="middle">{}</text><line x1="{}" x2="{}" y1="{}" y2="{}" stroke="#9aa3ad"/>"##,
        super::html::escape(chart.y_title),
        (plot.left() + plot.right()) / 2.0,
        height - 4.0,
        super::html::escape(x_title),
        plot.left(),
        plot.right(),
        plot.bottom(),
        plot.bottom()
    );
}

/// The time ticks under the plot, and a dashed line where time between runs was left out.
fn time_ticks(out: &mut String, plot: &Plot, axis: &TimeAxis<'_>) {
    let (ticks, step) = axis.ticks(plot.size);
    for i in ticks {
        let x = axis.left(plot, i);
        let _ = write!(
            out,
            r##"<line x1="{x:.1}" x2="{x:.1}" y1="{}" y2="{}" stroke="#9aa3ad"/><text x="{x:.1}" y="{}" class="tick" text-anchor="middle">{}</text>"##,
            plot.bottom(),
            plot.bottom() + 4.0,
            plot.bottom() + 16.0,
            if axis.since_start { elapsed_label(axis.starts_ms[i], step) } else { time_label(axis.starts_ms[i], step) }
        );
    }
    for i in (1..axis.starts_ms.len()).filter(|&i| axis.gap_before(i)) {
        let x = axis.left(plot, i);
        let _ = write!(
            out,
            r##"<line x1="{x:.1}" x2="{x:.1}" y1="{TOP}" y2="{}" stroke="#5f6b78" stroke-dasharray="3 3"><title>no requests between these runs</title></line>"##,
            plot.bottom()
        );
    }
}

/// Hover targets: one full-height transparent column per slice with its tooltip.
fn hover_columns(out: &mut String, plot: &Plot, axis: &TimeAxis<'_>) {
    let w = axis.slot(plot);
    for (i, tip) in axis.tooltips.iter().enumerate().take(axis.starts_ms.len()) {
        let _ = write!(
            out,
            r#"<rect class="hover" x="{:.1}" y="{TOP}" width="{w:.2}" height="{:.1}"><title>{}</title></rect>"#,
            axis.left(plot, i),
            plot.bottom() - TOP,
            super::html::escape(tip)
        );
    }
}

pub fn line_chart(chart: &Chart<'_>, axis: &TimeAxis<'_>, lines: &[Line<'_>]) -> String {
    let data_max = lines.iter().flat_map(|l| l.values.iter().flatten()).fold(0.0f64, |a, b| a.max(clamp(*b)));
    let plot = Plot { size: chart.size, y: linear(data_max) };
    let mut out = String::new();
    open(&mut out, chart, &plot, axis.title());
    time_ticks(&mut out, &plot, axis);
    for line in lines {
        let points = line.values.iter().enumerate().take(axis.starts_ms.len()).map(|(i, v)| {
            let point = v.map(|v| (axis.mid(&plot, i), plot.y(v)));
            (axis.gap_before(i), point)
        });
        draw_line(&mut out, line.color, line.dashed, points);
    }
    hover_columns(&mut out, &plot, axis);
    out += "</svg>";
    out
}

/// Draws `(break before, point)` as polylines, broken at gaps and at missing points; a lone point
/// between breaks is a dot.
fn draw_line(out: &mut String, color: &str, dashed: bool, points: impl Iterator<Item = (bool, Option<(f64, f64)>)>) {
    let dash = if dashed { r#" stroke-dasharray="6 4""# } else { "" };
    let mut run: Vec<(f64, f64)> = Vec::new();
    let flush = |out: &mut String, run: &mut Vec<(f64, f64)>| {
        match run.as_slice() {
            [] => {}
            [(x, y)] => {
                let _ = write!(out, r#"<circle cx="{x:.1}" cy="{y:.1}" r="2.5" fill="{color}"/>"#);
            }
            _ => {
                let text: Vec<String> = run.iter().map(|(x, y)| format!("{x:.1},{y:.1}")).collect();
                let _ = write!(
                    out,
                    r#"<polyline fill="none" stroke="{color}" stroke-width="2" stroke-linejoin="round"{dash} points="{}"/>"#,
                    text.join(" ")
                );
            }
        }
        run.clear();
    };
    for (gap, point) in points {
        if gap {
            flush(out, &mut run);
        }
        match point {
            Some(p) => run.push(p),
            None => flush(out, &mut run),
        }
    }
    flush(out, &mut run);
}

/// Bars stacked bottom-up in layer order: each slice's shares (0–100%), or its counts.
pub fn stacked_bars(chart: &Chart<'_>, axis: &TimeAxis<'_>, layers: &[Layer<'_>], stack: Stack) -> String {
    let n = axis.starts_ms.len();
    let value = |layer: &Layer<'_>, i: usize| clamp(layer.values.get(i).copied().unwrap_or(0.0)).max(0.0);
    let totals: Vec<f64> = (0..n).map(|i| layers.iter().map(|l| value(l, i)).sum()).collect();
    let plot = match stack {
        Stack::Share => Plot { size: chart.size, y: YScale::Linear { max: 100.0, step: 25.0 } },
        Stack::Count => Plot { size: chart.size, y: linear(totals.iter().fold(0.0, |a, b| a.max(*b))) },
    };
    let mut out = String::new();
    open(&mut out, chart, &plot, axis.title());
    time_ticks(&mut out, &plot, axis);
    let w = (axis.slot(&plot) * 0.92).max(0.5);
    for (i, total) in totals.iter().enumerate() {
        if *total <= 0.0 {
            continue;
        }
        let scale = if stack == Stack::Share { 100.0 / total } else { 1.0 };
        let mut below = 0.0;
        for layer in layers {
            let v = value(layer, i) * scale;
            if v > 0.0 {
                let (y_top, y_bottom) = (plot.y(below + v), plot.y(below));
                let _ = write!(
                    out,
                    r#"<rect x="{:.2}" y="{y_top:.2}" width="{w:.2}" height="{:.2}" fill="{}"/>"#,
                    axis.mid(&plot, i) - w / 2.0,
                    y_bottom - y_top,
                    layer.color
                );
            }
            below += v;
        }
    }
    hover_columns(&mut out, &plot, axis);
    out += "</svg>";
    out
}

/// Named groups along the x axis instead of time (e.g. session lengths): one slot per group, in
/// order, with one hover target each.
pub struct GroupAxis<'a> {
    pub labels: &'a [String],
    /// The x axis's title.
    pub title: &'a str,
    /// One tooltip per group.
    pub tooltips: &'a [String],
}

/// The widest a grouped bar is drawn, so a chart of two groups does not show slabs.
const MAX_BAR: f64 = 36.0;

/// Bars side by side in each group, one per layer in layer order. The y axis is linear from 0, or
/// logarithmic when the values span more than a factor of 20 (as a session of one request and one
/// of a hundred do), where a linear one would flatten every bar but the tallest.
pub fn grouped_bars(chart: &Chart<'_>, axis: &GroupAxis<'_>, layers: &[Layer<'_>]) -> String {
    let groups = axis.labels.len();
    let value = |layer: &Layer<'_>, i: usize| clamp(layer.values.get(i).copied().unwrap_or(0.0)).max(0.0);
    let values: Vec<f64> = layers.iter().flat_map(|l| (0..groups).map(move |i| value(l, i))).collect();
    let plot = Plot { size: chart.size, y: spread_scale(&values) };
    let mut out = String::new();
    open(&mut out, chart, &plot, axis.title);
    let slot = (plot.right() - plot.left()) / groups.max(1) as f64;
    let bar = (slot * 0.7 / layers.len().max(1) as f64).min(MAX_BAR);
    for (i, label) in axis.labels.iter().enumerate() {
        let mid = plot.left() + (i as f64 + 0.5) * slot;
        let _ = write!(
            out,
            r#"<text x="{mid:.1}" y="{}" class="tick" text-anchor="middle">{}</text>"#,
            plot.bottom() + 16.0,
            super::html::escape(label)
        );
        let first = mid - bar * layers.len() as f64 / 2.0;
        for (k, layer) in layers.iter().enumerate() {
            let v = value(layer, i);
            if v <= 0.0 {
                continue;
            }
            let top = plot.y(v);
            let _ = write!(
                out,
                r#"<rect x="{:.2}" y="{top:.2}" width="{:.2}" height="{:.2}" fill="{}"/>"#,
                first + k as f64 * bar + 1.0,
                (bar - 2.0).max(0.5),
                plot.bottom() - top,
                layer.color
            );
        }
    }
    for (i, tip) in axis.tooltips.iter().enumerate().take(groups) {
        let _ = write!(
            out,
            r#"<rect class="hover" x="{:.1}" y="{TOP}" width="{slot:.2}" height="{:.1}"><title>{}</title></rect>"#,
            plot.left() + i as f64 * slot,
            plot.bottom() - TOP,
            super::html::escape(tip)
        );
    }
    out += "</svg>";
    out
}

/// A linear scale from 0, or a log one when the positive values span more than a factor of 20;
/// its floor a decade under half the smallest value, so the shortest bar still shows.
fn spread_scale(values: &[f64]) -> YScale {
    let positive = values.iter().copied().filter(|v| *v > 0.0);
    let (min, max) = positive.fold((f64::INFINITY, 0.0f64), |(lo, hi), v| (lo.min(v), hi.max(v)));
    if !(max > 0.0 && max / min > 20.0) {
        return linear(max);
    }
    // Values are clamped to 1e12; a floor under 1e-6 (a nanosecond in ms) draws nothing more.
    let low = ((min / 2.0).log10().floor().max(-6.0)) as i32;
    let high = max.log10().ceil() as i32;
    YScale::Log { low, high: high.max(low + 1) }
}

/// The percentiles marked on the distribution's x axis, one per decade of `1/(1-p)`.
const PERCENTILE_TICKS: [&str; 6] = ["0%", "90%", "99%", "99.9%", "99.99%", "99.999%"];
/// The most the x axis spans: 99.999%.
const DECADES: usize = 5;

/// `log10(1/(1-q))`: 0 at the fastest request, 1 at 90%, 2 at 99%, …
fn nines(quantile: f64) -> f64 {
    let q = if quantile.is_nan() { 0.0 } else { quantile.clamp(0.0, 1.0) };
    (-(1.0 - q).max(1e-12).log10()).clamp(0.0, DECADES as f64)
}

/// Decades the x axis spans: to the next whole one past the furthest curve (at least 99%, so a
/// short curve is not stretched into a tail it does not have).
fn decades_shown(curves: &[Curve<'_>]) -> usize {
    let reach = curves.iter().flat_map(|c| c.points.iter().map(|p| nines(p.0))).fold(0.0, f64::max);
    ((reach - 1e-9).ceil().max(2.0) as usize).min(DECADES)
}

/// Whether the distribution needs a log latency axis: when the slowest value is far above the
/// fastest median, a linear axis would flatten every curve but the worst.
fn log_latency(curves: &[Curve<'_>]) -> Option<YScale> {
    let values = || curves.iter().flat_map(|c| c.points.iter().map(|p| clamp(p.1)));
    let max = values().fold(0.0f64, f64::max);
    let smallest_median = curves
        .iter()
        .filter_map(|c| c.points.iter().find(|p| p.0 >= 0.5).map(|p| clamp(p.1)))
        .filter(|v| *v > 0.0)
        .fold(f64::INFINITY, f64::min);
    if !(max > 0.0 && smallest_median.is_finite() && max / smallest_median > 20.0) {
        return None;
    }
    let low = values().filter(|v| *v > 0.0).fold(f64::INFINITY, f64::min).log10().floor() as i32;
    let high = max.log10().ceil() as i32;
    Some(YScale::Log { low, high: high.max(low + 1) })
}

/// Latency by percentile, as HdrHistogram plots it: x is `1/(1-p)` on a log axis (0% to 99% …
/// 99.999%, as far as the curves go),
/// y is latency (log when the curves span more than a factor of 20). Each curve gets hover marks
/// at its median, 90%, 99%, 99.9%, 99.99% and its last point.
pub fn percentile_chart(chart: &Chart<'_>, curves: &[Curve<'_>]) -> String {
    let y = log_latency(curves)
        .unwrap_or_else(|| linear(curves.iter().flat_map(|c| c.points.iter().map(|p| p.1)).fold(0.0, f64::max)));
    let plot = Plot { size: chart.size, y };
    let decades = decades_shown(curves);
    let x = |q: f64| plot.left() + nines(q).min(decades as f64) / decades as f64 * (plot.right() - plot.left());
    let mut out = String::new();
    open(&mut out, chart, &plot, "percentile (log scale of 1/(1−p))");
    for (decade, label) in PERCENTILE_TICKS.iter().enumerate().take(decades + 1) {
        let x = plot.left() + decade as f64 / decades as f64 * (plot.right() - plot.left());
        // The last label ends at the plot's edge rather than running past it.
        let anchor = if decade == decades { "end" } else { "middle" };
        let _ = write!(
            out,
            r##"<line x1="{x:.1}" x2="{x:.1}" y1="{TOP}" y2="{}" stroke="#eef0f3"/><text x="{x:.1}" y="{}" class="tick" text-anchor="{anchor}">{label}</text>"##,
            plot.bottom() + 4.0,
            plot.bottom() + 16.0,
        );
    }
    for curve in curves {
        let points = curve.points.iter().map(|&(q, ms)| (false, Some((x(q), plot.y(ms)))));
        draw_line(&mut out, curve.color, curve.dashed, points);
    }
    for curve in curves {
        let last = curve.points.len().saturating_sub(1);
        for (i, &(q, ms)) in curve.points.iter().enumerate() {
            let marked = [0.5, 0.9, 0.99, 0.999, 0.9999].iter().any(|m| (q - m).abs() < 1e-9);
            if !(marked || (i == last && q > 0.0)) {
                continue;
            }
            let _ = write!(
                out,
                r#"<circle class="mark" cx="{:.1}" cy="{:.1}" r="4" stroke="{}"><title>{}: {} ms at {}</title></circle>"#,
                x(q),
                plot.y(ms),
                curve.color,
                super::html::escape(curve.name),
                number(clamp(ms), 0.001),
                percentile_text(q)
            );
        }
    }
    out += "</svg>";
    out
}

/// `99.9%`, `50%`, `99.95%`.
pub fn percentile_text(q: f64) -> String {
    let p = clamp(q) * 100.0;
    let text = format!("{p:.4}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    format!("{text}%")
}

/// How a legend item shows its colour: a filled box, or a line sample (solid or dashed) where the
/// style is what tells two items apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Swatch {
    Fill,
    Line,
    Dashed,
}

impl Swatch {
    pub fn dashed(dashed: bool) -> Swatch {
        if dashed { Swatch::Dashed } else { Swatch::Fill }
    }

    /// The CSS of an `<i>` showing it in `color`.
    pub fn style(self, color: &str) -> String {
        match self {
            Swatch::Fill => format!("background:{color}"),
            Swatch::Line => format!("width:24px;height:0;border-top:3px solid {color}"),
            Swatch::Dashed => format!("width:24px;height:0;border-top:3px dashed {color}"),
        }
    }
}

/// A legend: coloured swatches with names.
pub fn legend(items: &[(&str, &str, Swatch)]) -> String {
    let mut out = String::from(r#"<div class="legend">"#);
    for (name, color, swatch) in items {
        let _ = write!(out, r#"<span><i style="{}"></i>{}</span>"#, swatch.style(color), super::html::escape(name));
    }
    out += "</div>";
    out
}

/// A small horizontal bar of shares (a route's status mix).
pub fn mix_bar(parts: &[(f64, &str, String)]) -> String {
    let total: f64 = parts.iter().map(|p| clamp(p.0).max(0.0)).sum();
    let mut out =
        String::from(r#"<svg class="mix" viewBox="0 0 100 10" width="100" height="10" preserveAspectRatio="none">"#);
    let mut x = 0.0;
    for (v, color, tip) in parts {
        let v = clamp(*v);
        if v <= 0.0 || total <= 0.0 {
            continue;
        }
        let w = v / total * 100.0;
        let _ = write!(
            out,
            r#"<rect x="{x:.2}" y="0" width="{w:.2}" height="10" fill="{color}"><title>{}</title></rect>"#,
            super::html::escape(tip)
        );
        x += w;
    }
    out += "</svg>";
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn steps_are_round() {
        assert_eq!(nice_step(100.0, 4.0), 25.0);
        assert_eq!(nice_step(9.0, 4.0), 2.5);
        assert_eq!(nice_ceiling(290.0), 350.0);
        assert_eq!(time_step_ms(3_000.0, 8.0), 500);
        assert_eq!(time_step_ms(6.0 * 3_600_000.0, 8.0), 3_600_000);
        assert_eq!(number(0.1 + 0.2, 0.1), "0.3");
        assert_eq!(number(7.5, 2.5), "7.5");
        assert_eq!(number(300.0, 100.0), "300");
        assert_eq!(elapsed_label(90_000, 10_000), "+1:30");
        assert_eq!(elapsed_label(3_720_000, 60_000), "+1:02:00");
        assert_eq!(elapsed_label(1_500, 500), "+0:01.5");
    }

    #[test]
    fn percentiles_sit_on_a_log_axis_of_nines() {
        assert_eq!(nines(0.0), 0.0);
        assert!((nines(0.99) - 2.0).abs() < 1e-9);
        assert_eq!(nines(1.0), 5.0);
        let points = [(0.0, 1.0), (0.999, 2.0)];
        assert_eq!(decades_shown(&[Curve { name: "c", color: "#000", points: &points, dashed: false }]), 3);
        assert_eq!(decades_shown(&[]), 2);
        assert_eq!(percentile_text(0.999), "99.9%");
        assert_eq!(percentile_text(0.5), "50%");
    }

    #[test]
    fn a_log_latency_axis_only_when_the_curves_span_a_factor_of_twenty() {
        let fast = [(0.0, 1.0), (0.5, 2.0), (0.99, 10.0)];
        let slow = [(0.0, 100.0), (0.5, 300.0), (0.99, 5000.0)];
        let curve = |points| Curve { name: "c", color: "#000", points, dashed: false };
        assert!(log_latency(&[curve(&fast)]).is_none());
        match log_latency(&[curve(&fast), curve(&slow)]) {
            Some(YScale::Log { low, high }) => assert_eq!((low, high), (0, 4)),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn grouped_bars_turn_logarithmic_only_when_the_values_span_a_factor_of_twenty() {
        assert!(matches!(spread_scale(&[5.0, 90.0]), YScale::Linear { .. }));
        match spread_scale(&[10.0, 0.0, 3000.0]) {
            YScale::Log { low, high } => assert_eq!((low, high), (0, 4)),
            other => panic!("{other:?}"),
        }
        assert!(matches!(spread_scale(&[]), YScale::Linear { .. }));
    }

    /// What a chart's output must be whatever it was given: one whole `<svg>` element with
    /// finite coordinates.
    fn assert_whole(svg: &str) {
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"), "{svg}");
        assert_eq!(svg.matches("<svg").count(), 1);
        assert!(!svg.contains("NaN") && !svg.contains("inf"), "{svg}");
    }

    fn value() -> impl Strategy<Value = f64> {
        prop_oneof![Just(0.0), Just(f64::MAX), Just(1e300), Just(-5.0), 0.0..1e6, Just(f64::MIN_POSITIVE)]
    }

    proptest! {
        #[test]
        fn chart_builders_never_panic_on_odd_input(
            starts in prop::collection::vec(-1_000_000_000_000i64..5_000_000_000_000, 0..40),
            interval in 0i64..100_000_000,
            values in prop::collection::vec(prop::option::of(value()), 0..50),
            quantiles in prop::collection::vec((0.0..=1.0f64, value()), 0..30),
            narrow in any::<bool>(),
        ) {
            let mut starts = starts;
            starts.sort_unstable();
            let tooltips: Vec<String> = starts.iter().map(|s| format!("<{s}>")).collect();
            let axis = TimeAxis { starts_ms: &starts, since_start: narrow, interval_ms: interval, tooltips: &tooltips };
            let size = if narrow { HALF } else { WIDE };
            let chart = Chart { title: "t", y_title: "y", unit: " ms", size };
            let line = Line { name: "a", color: "#000", values: values.clone(), dashed: true };
            assert_whole(&line_chart(&chart, &axis, &[line]));
            let layer = Layer { name: "a", color: "#000", values: values.iter().map(|v| v.unwrap_or(0.0)).collect() };
            assert_whole(&stacked_bars(&chart, &axis, std::slice::from_ref(&layer), Stack::Share));
            assert_whole(&stacked_bars(&chart, &axis, &[layer], Stack::Count));
            let mut points = quantiles;
            points.sort_by(|a, b| a.0.total_cmp(&b.0));
            let curve = Curve { name: "c", color: "#000", points: &points, dashed: false };
            let one = [(0.5, 3.0)];
            let single = Curve { name: "one", color: "#111", points: &one, dashed: true };
            assert_whole(&percentile_chart(&chart, &[curve, single]));
            assert_whole(&percentile_chart(&chart, &[]));
            let labels: Vec<String> = starts.iter().map(|s| format!("<{s}>")).collect();
            let groups = GroupAxis { labels: &labels, title: "x", tooltips: &tooltips };
            let bars = Layer { name: "b", color: "#000", values: values.iter().map(|v| v.unwrap_or(0.0)).collect() };
            assert_whole(&grouped_bars(&chart, &groups, &[bars]));
            assert_whole(&grouped_bars(&chart, &groups, &[]));
        }
    }
}
