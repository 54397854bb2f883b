//! Inline SVG charts for the HTML report, drawn here so the file needs no script and fetches
//! nothing: time on the x axis, nice ticks, one hover target per time slice (an SVG `<title>`
//! tooltip with every value of that slice).

use std::fmt::Write;

pub const WIDTH: f64 = 1080.0;
pub const HEIGHT: f64 = 250.0;
const LEFT: f64 = 64.0;
const RIGHT: f64 = 16.0;
const TOP: f64 = 12.0;
const BOTTOM: f64 = 30.0;

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

/// The time axis: one equal slot per slice, in order. Within a run the slices are contiguous (empty
/// ones are filled in), so this is plain time; between separate runs (files far apart) the empty
/// time is left out and a dashed line marks the gap.
pub struct TimeAxis<'a> {
    /// Slice starts, ms since the epoch.
    pub starts_ms: &'a [i64],
    pub interval_ms: i64,
    /// One tooltip per slice.
    pub tooltips: &'a [String],
}

impl TimeAxis<'_> {
    fn slot(&self) -> f64 {
        (WIDTH - LEFT - RIGHT) / self.starts_ms.len().max(1) as f64
    }

    /// The x of a slice's left edge.
    fn left(&self, i: usize) -> f64 {
        LEFT + i as f64 * self.slot()
    }

    /// The x of a slice's middle.
    fn mid(&self, i: usize) -> f64 {
        self.left(i) + self.slot() / 2.0
    }

    fn slice_width(&self) -> f64 {
        self.slot()
    }

    /// Whether time was skipped just before slice `i`.
    fn gap_before(&self, i: usize) -> bool {
        i > 0 && self.starts_ms[i] - self.starts_ms[i - 1] != self.interval_ms
    }

    /// Slices that get a time label: those starting on a round step (1s, 5s, 1m, …), or every
    /// k-th when the slice length does not divide into such steps.
    fn ticks(&self) -> (Vec<usize>, i64) {
        let n = self.starts_ms.len();
        let step = time_step_ms(n as f64 * self.interval_ms as f64).max(self.interval_ms);
        let round: Vec<usize> = (0..n).filter(|&i| self.starts_ms[i].rem_euclid(step) == 0).collect();
        if round.len() >= 2 || n < 4 {
            return (round, step);
        }
        let every = n.div_ceil(8).max(1);
        ((0..n).step_by(every).collect(), step)
    }
}

fn y_of(v: f64, max: f64) -> f64 {
    TOP + (1.0 - v / max) * (HEIGHT - TOP - BOTTOM)
}

/// A step of 1, 2 or 5 × 10^k giving about `count` ticks up to `max`.
fn nice_step(max: f64, count: f64) -> f64 {
    let raw = (max / count).max(f64::MIN_POSITIVE);
    let magnitude = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 2.5, 5.0, 10.0].iter().map(|m| m * magnitude).find(|s| *s >= raw).unwrap_or(10.0 * magnitude);
    if step > 0.0 { step } else { 1.0 }
}

/// Time ticks at a step people read (1s, 5s, 1m, 10m, 1h …) giving about 8 ticks.
fn time_step_ms(span_ms: f64) -> i64 {
    const STEPS: [i64; 18] = [
        100, 200, 500, 1_000, 2_000, 5_000, 10_000, 15_000, 30_000, 60_000, 120_000, 300_000, 600_000, 900_000,
        1_800_000, 3_600_000, 7_200_000, 21_600_000,
    ];
    STEPS.iter().copied().find(|s| span_ms / *s as f64 <= 8.0).unwrap_or(86_400_000)
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

fn frame(out: &mut String, axis: &TimeAxis<'_>, y_max: f64, y_label: &dyn Fn(f64) -> String) {
    let _ = write!(
        out,
        r#"<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" width="100%" preserveAspectRatio="xMidYMid meet" role="img">"#
    );
    let step = nice_step(y_max, 4.0);
    let mut v = 0.0;
    while v <= y_max + step * 1e-9 {
        let y = y_of(v, y_max);
        let _ = write!(
            out,
            r##"<line x1="{LEFT}" x2="{}" y1="{y:.1}" y2="{y:.1}" stroke="#e3e6ea"/><text x="{}" y="{:.1}" class="tick" text-anchor="end">{}</text>"##,
            WIDTH - RIGHT,
            LEFT - 6.0,
            y + 4.0,
            y_label(v)
        );
        v += step;
    }
    let (ticks, step) = axis.ticks();
    for i in ticks {
        let x = axis.left(i);
        let _ = write!(
            out,
            r##"<line x1="{x:.1}" x2="{x:.1}" y1="{}" y2="{}" stroke="#9aa3ad"/><text x="{x:.1}" y="{}" class="tick" text-anchor="middle">{}</text>"##,
            HEIGHT - BOTTOM,
            HEIGHT - BOTTOM + 4.0,
            HEIGHT - BOTTOM + 17.0,
            time_label(axis.starts_ms[i], step)
        );
    }
    for i in (1..axis.starts_ms.len()).filter(|&i| axis.gap_before(i)) {
        let x = axis.left(i);
        let _ = write!(
            out,
            r##"<line x1="{x:.1}" x2="{x:.1}" y1="{TOP}" y2="{}" stroke="#5f6b78" stroke-dasharray="3 3"><title>no requests between these runs</title></line>"##,
            HEIGHT - BOTTOM
        );
    }
    let _ = write!(
        out,
        r##"<line x1="{LEFT}" x2="{}" y1="{}" y2="{}" stroke="#9aa3ad"/>"##,
        WIDTH - RIGHT,
        HEIGHT - BOTTOM,
        HEIGHT - BOTTOM
    );
}

/// Hover targets: one full-height transparent column per slice with its tooltip.
fn hover_columns(out: &mut String, axis: &TimeAxis<'_>) {
    let w = axis.slice_width();
    for (i, tip) in axis.tooltips.iter().enumerate() {
        let x = axis.mid(i) - w / 2.0;
        let _ = write!(
            out,
            r#"<rect class="hover" x="{x:.1}" y="{TOP}" width="{w:.2}" height="{}"><title>{}</title></rect>"#,
            HEIGHT - TOP - BOTTOM,
            super::html::escape(tip)
        );
    }
}

pub fn line_chart(axis: &TimeAxis<'_>, lines: &[Line<'_>], y_label: &dyn Fn(f64) -> String) -> String {
    let data_max = lines.iter().flat_map(|l| l.values.iter().flatten()).fold(0.0f64, |a, b| a.max(*b));
    let y_max = nice_ceiling(data_max);
    let mut out = String::new();
    frame(&mut out, axis, y_max, y_label);
    for line in lines {
        draw_line(&mut out, axis, line, y_max);
    }
    hover_columns(&mut out, axis);
    out += "</svg>";
    out
}

fn nice_ceiling(max: f64) -> f64 {
    if max <= 0.0 {
        return 1.0;
    }
    // A fine step for the ceiling, so the data fills most of the height.
    let step = nice_step(max * 1.08, 10.0);
    (max * 1.08 / step).ceil() * step
}

fn draw_line(out: &mut String, axis: &TimeAxis<'_>, line: &Line<'_>, y_max: f64) {
    let dash = if line.dashed { r#" stroke-dasharray="6 4""# } else { "" };
    let mut run: Vec<String> = Vec::new();
    let flush = |out: &mut String, run: &mut Vec<String>| {
        if run.len() == 1 {
            // A lone point between gaps would not show as a line.
            let (x, y) = run[0].split_once(',').unwrap_or(("0", "0"));
            let _ = write!(out, r#"<circle cx="{x}" cy="{y}" r="2.5" fill="{}"/>"#, line.color);
        } else if run.len() > 1 {
            let _ = write!(
                out,
                r#"<polyline fill="none" stroke="{}" stroke-width="2" stroke-linejoin="round"{dash} points="{}"/>"#,
                line.color,
                run.join(" ")
            );
        }
        run.clear();
    };
    for (i, v) in line.values.iter().enumerate() {
        if axis.gap_before(i) {
            flush(out, &mut run);
        }
        match v {
            Some(v) => run.push(format!("{:.1},{:.1}", axis.mid(i), y_of(*v, y_max))),
            None => flush(out, &mut run),
        }
    }
    flush(out, &mut run);
}

/// Bars stacked bottom-up in layer order, scaled to each slice's total (shares, 0–100%).
pub fn share_bars(axis: &TimeAxis<'_>, layers: &[Layer<'_>]) -> String {
    let mut out = String::new();
    frame(&mut out, axis, 1.0, &|v| format!("{:.0}%", v * 100.0));
    let w = (axis.slice_width() * 0.92).max(0.5);
    for i in 0..axis.starts_ms.len() {
        let total: f64 = layers.iter().map(|l| l.values[i]).sum();
        if total <= 0.0 {
            continue;
        }
        let mut below = 0.0;
        for layer in layers {
            let v = layer.values[i] / total;
            if v > 0.0 {
                let (y_top, y_bottom) = (y_of(below + v, 1.0), y_of(below, 1.0));
                let _ = write!(
                    out,
                    r#"<rect x="{:.2}" y="{y_top:.2}" width="{w:.2}" height="{:.2}" fill="{}"/>"#,
                    axis.mid(i) - w / 2.0,
                    y_bottom - y_top,
                    layer.color
                );
            }
            below += v;
        }
    }
    hover_columns(&mut out, axis);
    out += "</svg>";
    out
}

/// A legend: coloured swatches with names.
pub fn legend(items: &[(&str, &str, bool)]) -> String {
    let mut out = String::from(r#"<div class="legend">"#);
    for (name, color, dashed) in items {
        let style = if *dashed { format!("border-top:2px dashed {color}") } else { format!("background:{color}") };
        let _ = write!(out, r#"<span><i style="{style}"></i>{}</span>"#, super::html::escape(name));
    }
    out += "</div>";
    out
}

/// A small horizontal bar of shares (a route's status mix).
pub fn mix_bar(parts: &[(f64, &str, String)]) -> String {
    let total: f64 = parts.iter().map(|p| p.0).sum();
    let mut out =
        String::from(r#"<svg class="mix" viewBox="0 0 100 10" width="100" height="10" preserveAspectRatio="none">"#);
    let mut x = 0.0;
    for (v, color, tip) in parts {
        if *v <= 0.0 || total <= 0.0 {
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

    #[test]
    fn steps_are_round() {
        assert_eq!(nice_step(100.0, 4.0), 25.0);
        assert_eq!(nice_step(9.0, 4.0), 2.5);
        assert_eq!(nice_ceiling(290.0), 350.0);
        assert_eq!(time_step_ms(3_000.0), 500);
        assert_eq!(time_step_ms(6.0 * 3_600_000.0), 3_600_000);
    }
}
