//! The loss curve as a small standalone SVG: training loss per step, validation loss where
//! it was computed, axes with ticks and labels. Preference (DPO/IPO) runs get a second panel
//! below it: the reward margin (training per step, validation at evaluation steps) on the
//! left axis and the preference accuracy (a trailing mean of the training steps' accuracy,
//! and validation) on a 0–1 axis at the right. Runs without preference metrics get exactly
//! the one-panel SVG.

use std::fmt::Write;

use super::StepMetrics;

const W: f64 = 720.0;
const H: f64 = 420.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 20.0;
const TOP: f64 = 40.0;
const BOTTOM: f64 = 55.0;

/// Right margin of both panels when the preference panel is drawn (room for its 0–1 axis).
const RIGHT_PREF: f64 = 64.0;
/// Top of the preference panel's plot area, its height, and the SVG's height with it.
const PREF_TOP: f64 = H + 12.0;
const PREF_PH: f64 = 200.0;
const PREF_TOTAL_H: f64 = PREF_TOP + PREF_PH + BOTTOM;
/// Steps in the trailing mean of the training accuracy (per-step accuracy over a handful
/// of pairs is noisy).
const ACC_WINDOW: usize = 10;

/// "Nice" tick values covering `[lo, hi]` (about `n` of them): multiples of 1, 2, 2.5 or 5
/// times a power of ten. (Also used by the quantization-quality chart in graft-benches.)
pub fn ticks(lo: f64, hi: f64, n: usize) -> Vec<f64> {
    let span = (hi - lo).max(1e-12);
    let raw = span / n.max(1) as f64;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 2.5, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * mag);
    let mut t = (lo / step).ceil() * step;
    let mut out = Vec::new();
    while t <= hi + step * 1e-9 {
        out.push(t);
        t += step;
    }
    out
}

/// A tick label: no decimals for whole or large values, else up to three without trailing
/// zeros.
pub fn fmt_tick(v: f64) -> String {
    if v.abs() >= 100.0 || v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        let s = format!("{v:.3}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

/// The preference series to plot, all finite: (step, value).
struct PrefSeries {
    margin: Vec<(f64, f64)>,
    val_margin: Vec<(f64, f64)>,
    /// Trailing mean over the last [`ACC_WINDOW`] steps with a finite accuracy.
    accuracy: Vec<(f64, f64)>,
    val_accuracy: Vec<(f64, f64)>,
}

impl PrefSeries {
    /// `None` when no step has preference metrics (training or validation).
    fn collect(steps: &[StepMetrics]) -> Option<PrefSeries> {
        if !steps
            .iter()
            .any(|s| s.preference.is_some() || s.val_preference.is_some())
        {
            return None;
        }
        let finite = |v: f64| v.is_finite().then_some(v);
        let series = |get: &dyn Fn(&StepMetrics) -> Option<f64>| -> Vec<(f64, f64)> {
            steps
                .iter()
                .filter_map(|s| get(s).and_then(finite).map(|v| (s.step as f64, v)))
                .collect()
        };
        // Accuracy is a fraction; clamped after dropping non-finite values (∞ is no 1).
        let clamp = |v: Vec<(f64, f64)>| -> Vec<(f64, f64)> {
            v.into_iter().map(|(x, a)| (x, a.clamp(0.0, 1.0))).collect()
        };
        let raw_acc = clamp(series(&|s| s.preference.map(|p| p.accuracy)));
        let accuracy = raw_acc
            .iter()
            .enumerate()
            .map(|(i, &(x, _))| {
                let w = &raw_acc[(i + 1).saturating_sub(ACC_WINDOW)..=i];
                (x, w.iter().map(|p| p.1).sum::<f64>() / w.len() as f64)
            })
            .collect();
        Some(PrefSeries {
            margin: series(&|s| s.preference.map(|p| p.margin)),
            val_margin: series(&|s| s.val_preference.map(|p| p.margin)),
            accuracy,
            val_accuracy: clamp(series(&|s| s.val_preference.map(|p| p.accuracy))),
        })
    }

    fn points(&self) -> impl Iterator<Item = &(f64, f64)> {
        self.margin
            .iter()
            .chain(&self.val_margin)
            .chain(&self.accuracy)
            .chain(&self.val_accuracy)
    }
}

/// The SVG document for `steps` (`title` goes on top).
pub fn loss_svg(steps: &[StepMetrics], title: &str) -> String {
    let train: Vec<(f64, f64)> = steps
        .iter()
        .filter(|s| s.train_loss.is_finite())
        .map(|s| (s.step as f64, s.train_loss))
        .collect();
    let val: Vec<(f64, f64)> = steps
        .iter()
        .filter_map(|s| {
            s.val_loss
                .filter(|v| v.is_finite())
                .map(|v| (s.step as f64, v))
        })
        .collect();
    let pref = PrefSeries::collect(steps);
    let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for &(x, y) in train.iter().chain(&val) {
        x0 = x0.min(x);
        x1 = x1.max(x);
        y0 = y0.min(y);
        y1 = y1.max(y);
    }
    // Both panels share the step axis.
    for &(x, _) in pref.iter().flat_map(|p| p.points()) {
        x0 = x0.min(x);
        x1 = x1.max(x);
    }
    if x0 > x1 {
        (x0, x1) = (0.0, 1.0);
    }
    if y0 > y1 {
        (y0, y1) = (0.0, 1.0);
    }
    if x1 - x0 < 1.0 {
        x1 = x0 + 1.0;
    }
    let pad = ((y1 - y0) * 0.05).max(1e-3);
    let (y0, y1) = ((y0 - pad).max(0.0), y1 + pad);
    let right = if pref.is_some() { RIGHT_PREF } else { RIGHT };
    let total_h = if pref.is_some() { PREF_TOTAL_H } else { H };
    let pw = W - LEFT - right;
    let ph = H - TOP - BOTTOM;
    let sx = |x: f64| LEFT + (x - x0) / (x1 - x0) * pw;
    let sy = |y: f64| TOP + (1.0 - (y - y0) / (y1 - y0)) * ph;

    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{total_h}" viewBox="0 0 {W} {total_h}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(s, r#"<rect width="{W}" height="{total_h}" fill="white"/>"#);
    let _ = writeln!(
        s,
        r#"<text x="{}" y="22" text-anchor="middle" font-size="15">{}</text>"#,
        W / 2.0,
        escape(title)
    );
    // Grid, ticks and tick labels.
    for t in ticks(y0, y1, 6) {
        let y = sy(t);
        let _ = writeln!(
            s,
            r##"<line x1="{LEFT}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#ddd"/><text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"##,
            W - right,
            LEFT - 6.0,
            y + 4.0,
            fmt_tick(t)
        );
    }
    x_ticks(&mut s, x0, x1, &sx, H - BOTTOM);
    // Axes and labels.
    let _ = writeln!(
        s,
        r##"<path d="M{LEFT},{TOP} V{:.1} H{:.1}" fill="none" stroke="#000"/>"##,
        H - BOTTOM,
        W - right
    );
    if pref.is_none() {
        // Preference runs label the shared step axis once, under the lower panel.
        x_label(&mut s, pw, H);
    }
    let _ = writeln!(
        s,
        r#"<text x="16" y="{:.1}" text-anchor="middle" transform="rotate(-90 16 {:.1})">{}</text>"#,
        TOP + ph / 2.0,
        TOP + ph / 2.0,
        if pref.is_some() {
            "loss (mean pair loss)"
        } else {
            "loss (mean cross-entropy, nats)"
        }
    );
    // Curves.
    let poly = |pts: &[(f64, f64)]| -> String {
        pts.iter()
            .map(|&(x, y)| format!("{:.1},{:.1}", sx(x), sy(y)))
            .collect::<Vec<_>>()
            .join(" ")
    };
    if !train.is_empty() {
        let _ = writeln!(
            s,
            r##"<polyline points="{}" fill="none" stroke="#1f77b4" stroke-width="1.5"/>"##,
            poly(&train)
        );
    }
    if !val.is_empty() {
        let _ = writeln!(
            s,
            r##"<polyline points="{}" fill="none" stroke="#d62728" stroke-width="2"/>"##,
            poly(&val)
        );
        for &(x, y) in &val {
            let _ = writeln!(
                s,
                r##"<circle cx="{:.1}" cy="{:.1}" r="3" fill="#d62728"/>"##,
                sx(x),
                sy(y)
            );
        }
    }
    // Legend.
    let lx = W - right - 150.0;
    let _ = writeln!(
        s,
        r##"<line x1="{lx}" y1="{}" x2="{}" y2="{}" stroke="#1f77b4" stroke-width="2"/><text x="{}" y="{}">train loss</text>"##,
        TOP + 12.0,
        lx + 24.0,
        TOP + 12.0,
        lx + 30.0,
        TOP + 16.0
    );
    let _ = writeln!(
        s,
        r##"<line x1="{lx}" y1="{}" x2="{}" y2="{}" stroke="#d62728" stroke-width="2"/><text x="{}" y="{}">validation loss</text>"##,
        TOP + 30.0,
        lx + 24.0,
        TOP + 30.0,
        lx + 30.0,
        TOP + 34.0
    );
    if let Some(p) = &pref {
        preference_panel(&mut s, p, &sx, pw, x0, x1);
    }
    s.push_str("</svg>\n");
    s
}

/// Tick marks and labels of the step axis at `axis_y`.
fn x_ticks(s: &mut String, x0: f64, x1: f64, sx: &dyn Fn(f64) -> f64, axis_y: f64) {
    for t in ticks(x0, x1, 8) {
        let x = sx(t);
        let _ = writeln!(
            s,
            r##"<line x1="{x:.1}" y1="{:.1}" x2="{x:.1}" y2="{:.1}" stroke="#000"/><text x="{x:.1}" y="{:.1}" text-anchor="middle">{}</text>"##,
            axis_y,
            axis_y + 5.0,
            axis_y + 19.0,
            fmt_tick(t)
        );
    }
}

/// "optimizer step" under a panel whose area ends at `bottom`.
fn x_label(s: &mut String, pw: f64, bottom: f64) {
    let _ = writeln!(
        s,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">optimizer step</text>"#,
        LEFT + pw / 2.0,
        bottom - 12.0
    );
}

/// The lower panel of a preference run: reward margin (left axis) and accuracy (right
/// axis, 0–1) over the steps, sharing the loss panel's step axis (`sx`).
fn preference_panel(
    s: &mut String,
    p: &PrefSeries,
    sx: &dyn Fn(f64) -> f64,
    pw: f64,
    x0: f64,
    x1: f64,
) {
    let (top, bottom, xr) = (PREF_TOP, PREF_TOP + PREF_PH, W - RIGHT_PREF);
    // Margin range: always includes 0 (where training starts); padded away from 0 only
    // where there is data, so that a non-negative margin's 0 sits on the axis.
    let (mut lo, mut hi) = (0.0f64, 0.0f64);
    for &(_, m) in p.margin.iter().chain(&p.val_margin) {
        lo = lo.min(m);
        hi = hi.max(m);
    }
    if hi - lo < 1e-6 {
        hi = lo + 1.0;
    }
    let pad = (hi - lo) * 0.05;
    let (m0, m1) = (if lo < 0.0 { lo - pad } else { lo }, hi + pad);
    let sm = |m: f64| top + (1.0 - (m - m0) / (m1 - m0)) * PREF_PH;
    let sa = |a: f64| top + (1.0 - a.clamp(0.0, 1.0)) * PREF_PH;

    // Left axis: margin grid, ticks and labels; a darker line at 0 inside the range.
    for t in ticks(m0, m1, 5) {
        // A tick that sums to about 0 from below is 0, not "-0".
        let t = if t.abs() < (m1 - m0) * 1e-9 { 0.0 } else { t };
        let y = sm(t);
        let _ = writeln!(
            s,
            r##"<line x1="{LEFT}" y1="{y:.1}" x2="{xr:.1}" y2="{y:.1}" stroke="#ddd"/><text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"##,
            LEFT - 6.0,
            y + 4.0,
            fmt_tick(t)
        );
    }
    if m0 < 0.0 {
        let _ = writeln!(
            s,
            r##"<line x1="{LEFT}" y1="{y:.1}" x2="{xr:.1}" y2="{y:.1}" stroke="#888"/>"##,
            y = sm(0.0)
        );
    }
    // Right axis: accuracy 0–1.
    for a in [0.0, 0.25, 0.5, 0.75, 1.0] {
        let y = sa(a);
        let _ = writeln!(
            s,
            r##"<line x1="{xr:.1}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#000"/><text x="{:.1}" y="{:.1}" text-anchor="start">{}</text>"##,
            xr + 5.0,
            xr + 8.0,
            y + 4.0,
            fmt_tick(a)
        );
    }
    x_ticks(s, x0, x1, sx, bottom);
    let _ = writeln!(
        s,
        r##"<path d="M{LEFT},{top:.1} V{bottom:.1} H{xr:.1} V{top:.1}" fill="none" stroke="#000"/>"##
    );
    x_label(s, pw, PREF_TOTAL_H);
    let mid = top + PREF_PH / 2.0;
    let _ = writeln!(
        s,
        r#"<text x="16" y="{mid:.1}" text-anchor="middle" transform="rotate(-90 16 {mid:.1})">reward margin (chosen - rejected)</text>"#
    );
    let rx = W - 12.0;
    let _ = writeln!(
        s,
        r#"<text x="{rx:.1}" y="{mid:.1}" text-anchor="middle" transform="rotate(90 {rx:.1} {mid:.1})">preference accuracy</text>"#
    );

    // Curves: accuracy first, so that the margin draws on top.
    let poly = |pts: &[(f64, f64)], sy: &dyn Fn(f64) -> f64| -> String {
        pts.iter()
            .map(|&(x, y)| format!("{:.1},{:.1}", sx(x), sy(y)))
            .collect::<Vec<_>>()
            .join(" ")
    };
    const ACC: &str = "#ff7f0e";
    const VAL_ACC: &str = "#9467bd";
    const MARGIN: &str = "#2ca02c";
    const VAL_MARGIN: &str = "#8c564b";
    if !p.accuracy.is_empty() {
        let _ = writeln!(
            s,
            r##"<polyline points="{}" fill="none" stroke="{ACC}" stroke-width="1.5" stroke-dasharray="5 3"/>"##,
            poly(&p.accuracy, &sa)
        );
    }
    if !p.val_accuracy.is_empty() {
        let _ = writeln!(
            s,
            r##"<polyline points="{}" fill="none" stroke="{VAL_ACC}" stroke-width="2" stroke-dasharray="5 3"/>"##,
            poly(&p.val_accuracy, &sa)
        );
        for &(x, a) in &p.val_accuracy {
            let _ = writeln!(
                s,
                r##"<rect x="{:.1}" y="{:.1}" width="6" height="6" fill="{VAL_ACC}"/>"##,
                sx(x) - 3.0,
                sa(a) - 3.0
            );
        }
    }
    if !p.margin.is_empty() {
        let _ = writeln!(
            s,
            r##"<polyline points="{}" fill="none" stroke="{MARGIN}" stroke-width="1"/>"##,
            poly(&p.margin, &sm)
        );
    }
    if !p.val_margin.is_empty() {
        let _ = writeln!(
            s,
            r##"<polyline points="{}" fill="none" stroke="{VAL_MARGIN}" stroke-width="2"/>"##,
            poly(&p.val_margin, &sm)
        );
        for &(x, m) in &p.val_margin {
            let _ = writeln!(
                s,
                r##"<circle cx="{:.1}" cy="{:.1}" r="3" fill="{VAL_MARGIN}"/>"##,
                sx(x),
                sm(m)
            );
        }
    }

    // Legend, bottom right (margin and accuracy usually rise, leaving it empty).
    let entries: [(&str, &str, &str); 4] = [
        (MARGIN, "", "train margin"),
        (VAL_MARGIN, "", "validation margin"),
        (
            ACC,
            r#" stroke-dasharray="5 3""#,
            "train accuracy (10-step mean, right)",
        ),
        (
            VAL_ACC,
            r#" stroke-dasharray="5 3""#,
            "validation accuracy (right)",
        ),
    ];
    let (bw, bh) = (262.0, 18.0 * entries.len() as f64 + 8.0);
    let (bx, by) = (xr - bw - 6.0, bottom - bh - 6.0);
    let _ = writeln!(
        s,
        r##"<rect x="{bx:.1}" y="{by:.1}" width="{bw:.1}" height="{bh:.1}" fill="white" fill-opacity="0.85" stroke="#ccc"/>"##
    );
    for (i, (color, dash, label)) in entries.iter().enumerate() {
        let y = by + 13.0 + 18.0 * i as f64;
        let _ = writeln!(
            s,
            r##"<line x1="{:.1}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="{color}" stroke-width="2"{dash}/><text x="{:.1}" y="{:.1}">{label}</text>"##,
            bx + 8.0,
            bx + 32.0,
            bx + 38.0,
            y + 4.0
        );
    }
}

/// `t` escaped for SVG text and attribute values.
pub fn escape(t: &str) -> String {
    t.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trainer::metrics::PreferenceMetrics;

    fn step(step: u64, train_loss: f64, val_loss: Option<f64>) -> StepMetrics {
        StepMetrics {
            step,
            epoch: 0,
            lr: 1e-4,
            train_loss,
            anchor: None,
            val_loss,
            preference: None,
            val_preference: None,
            grad_norm: 1.0,
            tokens: 100,
            tokens_per_sec: 1000.0,
            rss_mb: 100.0,
        }
    }

    /// An SFT run: decreasing loss, a NaN step, validation every 4 steps (one infinite).
    fn sft_steps() -> Vec<StepMetrics> {
        (1..=12)
            .map(|i| {
                let loss = if i == 5 {
                    f64::NAN
                } else {
                    2.5 / (1.0 + 0.2 * i as f64)
                };
                let val = match i {
                    4 | 12 => Some(2.2 / (1.0 + 0.15 * i as f64)),
                    8 => Some(f64::INFINITY),
                    _ => None,
                };
                step(i, loss, val)
            })
            .collect()
    }

    /// `loss_svg(&sft_steps(), "SFT & <run>")` before the preference panel existed.
    const SFT_GOLDEN: &str = r###"<svg xmlns="http://www.w3.org/2000/svg" width="720" height="420" viewBox="0 0 720 420" font-family="sans-serif" font-size="12">
<rect width="720" height="420" fill="white"/>
<text x="360" y="22" text-anchor="middle" font-size="15">SFT &amp; &lt;run&gt;</text>
<line x1="70" y1="347.0" x2="700.0" y2="347.0" stroke="#ddd"/><text x="64.0" y="351.0" text-anchor="end">0.75</text>
<line x1="70" y1="292.2" x2="700.0" y2="292.2" stroke="#ddd"/><text x="64.0" y="296.2" text-anchor="end">1</text>
<line x1="70" y1="237.4" x2="700.0" y2="237.4" stroke="#ddd"/><text x="64.0" y="241.4" text-anchor="end">1.25</text>
<line x1="70" y1="182.6" x2="700.0" y2="182.6" stroke="#ddd"/><text x="64.0" y="186.6" text-anchor="end">1.5</text>
<line x1="70" y1="127.8" x2="700.0" y2="127.8" stroke="#ddd"/><text x="64.0" y="131.8" text-anchor="end">1.75</text>
<line x1="70" y1="73.0" x2="700.0" y2="73.0" stroke="#ddd"/><text x="64.0" y="77.0" text-anchor="end">2</text>
<line x1="127.3" y1="365.0" x2="127.3" y2="370.0" stroke="#000"/><text x="127.3" y="384.0" text-anchor="middle">2</text>
<line x1="241.8" y1="365.0" x2="241.8" y2="370.0" stroke="#000"/><text x="241.8" y="384.0" text-anchor="middle">4</text>
<line x1="356.4" y1="365.0" x2="356.4" y2="370.0" stroke="#000"/><text x="356.4" y="384.0" text-anchor="middle">6</text>
<line x1="470.9" y1="365.0" x2="470.9" y2="370.0" stroke="#000"/><text x="470.9" y="384.0" text-anchor="middle">8</text>
<line x1="585.5" y1="365.0" x2="585.5" y2="370.0" stroke="#000"/><text x="585.5" y="384.0" text-anchor="middle">10</text>
<line x1="700.0" y1="365.0" x2="700.0" y2="370.0" stroke="#000"/><text x="700.0" y="384.0" text-anchor="middle">12</text>
<path d="M70,40 V365.0 H700.0" fill="none" stroke="#000"/>
<text x="385.0" y="408.0" text-anchor="middle">optimizer step</text>
<text x="16" y="202.5" text-anchor="middle" transform="rotate(-90 16 202.5)">loss (mean cross-entropy, nats)</text>
<polyline points="70.0,54.8 127.3,120.0 184.5,168.9 241.8,207.0 356.4,262.3 413.6,283.1 470.9,300.6 528.2,315.7 585.5,328.7 642.7,340.2 700.0,350.2" fill="none" stroke="#1f77b4" stroke-width="1.5"/>
<polyline points="241.8,210.0 700.0,339.2" fill="none" stroke="#d62728" stroke-width="2"/>
<circle cx="241.8" cy="210.0" r="3" fill="#d62728"/>
<circle cx="700.0" cy="339.2" r="3" fill="#d62728"/>
<line x1="550" y1="52" x2="574" y2="52" stroke="#1f77b4" stroke-width="2"/><text x="580" y="56">train loss</text>
<line x1="550" y1="70" x2="574" y2="70" stroke="#d62728" stroke-width="2"/><text x="580" y="74">validation loss</text>
</svg>
"###;

    fn pref(margin: f64, accuracy: f64) -> PreferenceMetrics {
        PreferenceMetrics {
            chosen_reward: margin / 2.0,
            rejected_reward: -margin / 2.0,
            margin,
            accuracy,
        }
    }

    /// A DPO-like run: loss from ln 2 down, margin from 0 up with noise (one negative
    /// step), noisy per-step accuracy, validation every 10 steps; a few non-finite values.
    fn dpo_steps() -> Vec<StepMetrics> {
        (1..=60u64)
            .map(|i| {
                let t = i as f64;
                let noise = ((t * 2.3).sin() + (t * 0.7).cos()) * 0.3;
                let margin = if i == 2 {
                    -0.4
                } else {
                    3.0 * (1.0 - (-t / 20.0).exp()) + noise
                };
                let acc = if margin > 0.8 || i % 3 == 0 { 1.0 } else { 0.5 };
                let mut s = step(i, (std::f64::consts::LN_2 - margin * 0.2).max(0.01), None);
                s.preference = Some(match i {
                    7 => pref(f64::NAN, f64::INFINITY),
                    9 => pref(f64::INFINITY, 0.5),
                    _ => pref(margin, acc),
                });
                if i % 10 == 0 || i == 1 {
                    let vm = if i == 1 {
                        0.0
                    } else {
                        2.4 * (1.0 - (-t / 25.0).exp())
                    };
                    s.val_loss = Some(std::f64::consts::LN_2 - vm * 0.18);
                    s.val_preference = Some(if i == 30 {
                        pref(f64::NAN, f64::NAN)
                    } else {
                        pref(vm, (0.5 + vm / 4.0).min(1.0))
                    });
                }
                s
            })
            .collect()
    }

    /// `(width, height)` of the viewBox `0 0 W H`.
    fn view_box(svg: &str) -> (f64, f64) {
        let vb = svg.split("viewBox=\"").nth(1).expect("attribute present");
        let v: Vec<f64> = vb[..vb.find('"').expect("closing quote")]
            .split(' ')
            .map(|n| n.parse().expect("viewBox number"))
            .collect();
        assert_eq!(&v[..2], &[0.0, 0.0]);
        (v[2], v[3])
    }

    /// Every `name="value"` attribute of the document.
    fn attrs(svg: &str) -> Vec<(String, String)> {
        let mut out = Vec::new();
        let mut rest = svg;
        while let Some(i) = rest.find("=\"") {
            let name = rest[..i]
                .rsplit(|c: char| c.is_whitespace() || c == '<')
                .next()
                .expect("attribute name")
                .to_string();
            let after = &rest[i + 2..];
            let end = after.find('"').expect("closing quote");
            out.push((name, after[..end].to_string()));
            rest = &after[end + 1..];
        }
        out
    }

    /// Balanced document, finite numbers only, every coordinate inside the viewBox, every
    /// polyline with points.
    fn check_well_formed(svg: &str) {
        assert!(svg.starts_with("<svg "), "{svg}");
        assert!(svg.ends_with("</svg>\n"));
        assert_eq!(svg.matches("<svg").count(), 1);
        assert_eq!(svg.matches("</svg>").count(), 1);
        assert_eq!(svg.matches("<text").count(), svg.matches("</text>").count());
        assert_eq!(svg.matches('<').count(), svg.matches('>').count());
        for bad in ["NaN", "inf", ">-0<"] {
            assert!(!svg.contains(bad), "{bad} in\n{svg}");
        }
        let (w, h) = view_box(svg);
        let inside = |v: &str, max: f64, what: &str| {
            let v: f64 = v.parse().unwrap_or_else(|_| panic!("{what}={v:?}"));
            assert!((0.0..=max).contains(&v), "{what}={v} outside 0..={max}");
        };
        let mut polylines = 0;
        for (name, value) in attrs(svg) {
            match name.as_str() {
                "x" | "x1" | "x2" | "cx" => inside(&value, w, &name),
                "y" | "y1" | "y2" | "cy" => inside(&value, h, &name),
                "points" => {
                    polylines += 1;
                    assert!(!value.trim().is_empty(), "a polyline without points");
                    for pt in value.split(' ') {
                        let (x, y) = pt.split_once(',').expect("x,y");
                        inside(x, w, "point x");
                        inside(y, h, "point y");
                    }
                }
                "d" => {
                    for cmd in value.split(' ') {
                        let (c, nums) = cmd.split_at(1);
                        for (k, n) in nums.split(',').enumerate() {
                            let max = match (c, k) {
                                ("M", 0) | ("H", _) => w,
                                _ => h,
                            };
                            inside(n, max, "path");
                        }
                    }
                }
                _ => {}
            }
        }
        assert_eq!(polylines, svg.matches("<polyline").count());
    }

    #[test]
    fn sft_svg_is_unchanged() {
        let svg = loss_svg(&sft_steps(), "SFT & <run>");
        assert_eq!(svg, SFT_GOLDEN);
        check_well_formed(&svg);
        assert_eq!(view_box(&svg), (W, H));
        for label in ["margin", "accuracy", "mean pair loss"] {
            assert!(!svg.contains(label), "{label}");
        }
        // No steps at all: still one panel, still a document.
        let empty = loss_svg(&[], "empty");
        check_well_formed(&empty);
        assert_eq!(view_box(&empty), (W, H));
        assert!(!empty.contains("<polyline"));
    }

    #[test]
    fn preference_svg_shows_margin_and_accuracy() {
        let steps = dpo_steps();
        let svg = loss_svg(&steps, "graft train: pairs.jsonl (60 steps)");
        check_well_formed(&svg);
        assert_eq!(view_box(&svg), (W, PREF_TOTAL_H));
        for label in [
            "reward margin (chosen - rejected)",
            "preference accuracy",
            "train margin",
            "validation margin",
            "train accuracy (10-step mean, right)",
            "validation accuracy (right)",
            "loss (mean pair loss)",
            "train loss",
            "validation loss",
        ] {
            assert!(svg.contains(&format!(">{label}</text>")), "{label}");
        }
        // The step axis is labelled once, under the lower panel.
        assert_eq!(svg.matches(">optimizer step</text>").count(), 1);
        // Two loss curves, train and validation margin, train and validation accuracy.
        assert_eq!(svg.matches("<polyline").count(), 6);
        let polyline = |color: &str| -> Vec<&str> {
            let line = svg
                .lines()
                .find(|l| l.starts_with("<polyline") && l.contains(&format!("stroke=\"{color}\"")))
                .unwrap_or_else(|| panic!("no {color} polyline"));
            let pts = line.split("points=\"").nth(1).expect("attribute present");
            pts[..pts.find('"').expect("closing quote")]
                .split(' ')
                .collect()
        };
        // Non-finite values are skipped: 60 steps, 58 finite margins (steps 7, 9), 59 finite
        // accuracies (step 7); 7 evaluations, one of them NaN.
        assert_eq!(polyline("#2ca02c").len(), 58);
        assert_eq!(polyline("#ff7f0e").len(), 59);
        assert_eq!(polyline("#8c564b").len(), 6);
        assert_eq!(polyline("#9467bd").len(), 6);
        // The lower panel's curves stay in the lower panel; the loss in the upper one.
        for color in ["#2ca02c", "#ff7f0e", "#8c564b", "#9467bd"] {
            for pt in polyline(color) {
                let y: f64 = pt
                    .split_once(',')
                    .expect("x,y")
                    .1
                    .parse()
                    .expect("a number");
                assert!((PREF_TOP..=PREF_TOP + PREF_PH).contains(&y), "{color} {y}");
            }
        }
        for pt in polyline("#1f77b4") {
            let y: f64 = pt
                .split_once(',')
                .expect("x,y")
                .1
                .parse()
                .expect("a number");
            assert!((TOP..=H - BOTTOM).contains(&y), "{y}");
        }
        // Both panels share the step axis: the same tick x positions.
        let ticks_at = |axis_y: f64| -> Vec<String> {
            svg.lines()
                .filter(|l| {
                    l.contains(&format!("y1=\"{axis_y:.1}\" x2="))
                        && l.contains(&format!("y2=\"{:.1}\"", axis_y + 5.0))
                })
                .map(|l| l.split('"').nth(1).expect("attribute present").to_string())
                .collect()
        };
        let upper = ticks_at(H - BOTTOM);
        assert!(upper.len() >= 4, "{upper:?}");
        assert_eq!(upper, ticks_at(PREF_TOP + PREF_PH));
    }

    #[test]
    fn preference_accuracy_is_a_trailing_mean() {
        let steps: Vec<StepMetrics> = (1..=12u64)
            .map(|i| {
                let mut s = step(i, 0.5, None);
                s.preference = Some(pref(0.1 * i as f64, if i <= 10 { 0.0 } else { 1.0 }));
                s
            })
            .collect();
        let p = PrefSeries::collect(&steps).expect("preference steps");
        let acc: Vec<f64> = p.accuracy.iter().map(|a| a.1).collect();
        assert_eq!(&acc[..10], &[0.0; 10]);
        assert!(
            (acc[10] - 0.1).abs() < 1e-12 && (acc[11] - 0.2).abs() < 1e-12,
            "{acc:?}"
        );
        assert!(p.val_margin.is_empty() && p.val_accuracy.is_empty());
        // Only validation preference metrics (no training ones) still draw the panel.
        let mut only_val = vec![step(1, 0.7, Some(0.69))];
        only_val[0].val_preference = Some(pref(0.0, 0.0));
        let svg = loss_svg(&only_val, "t");
        check_well_formed(&svg);
        assert!(svg.contains(">validation margin</text>"));
        // All preference values non-finite: the panel, with nothing to draw but axes.
        let mut bad = vec![step(1, f64::NAN, None)];
        bad[0].preference = Some(pref(f64::NAN, f64::NAN));
        let svg = loss_svg(&bad, "t");
        check_well_formed(&svg);
        assert!(!svg.contains("<polyline"));
        assert_eq!(view_box(&svg), (W, PREF_TOTAL_H));
    }

    #[test]
    #[ignore = "writes graft-loss-dpo.svg in the temp directory, to look at"]
    fn write_example_svg() {
        std::fs::write(
            std::env::temp_dir().join("graft-loss-dpo.svg"),
            loss_svg(&dpo_steps(), "graft train: pairs.jsonl (60 steps)"),
        )
        .expect("write the example SVG");
    }
}
