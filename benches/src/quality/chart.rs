//! The chart: mean KLD (log scale) against bits/weight, one labelled point per variant (plain
//! and imatrix variants drawn differently), the Pareto front joined and ringed. A standalone
//! SVG in the style of the trainer's loss curve (whose tick helpers it uses).

use std::fmt::Write;

use graft_train::trainer::svg::{escape, fmt_tick, ticks};

const W: f64 = 820.0;
const H: f64 = 520.0;
const LEFT: f64 = 72.0;
const RIGHT: f64 = 24.0;
const TOP: f64 = 56.0;
const BOTTOM: f64 = 56.0;
/// Label font size and the width of one character at it (an estimate for placement).
const FONT: f64 = 11.0;
const CHAR_W: f64 = 6.4;

/// One point of the chart.
#[derive(Clone, Debug)]
pub struct Point {
    /// Its label (the format's name).
    pub label: String,
    /// Bits per weight.
    pub x: f64,
    /// Mean KLD.
    pub y: f64,
    /// Quantized with the importance matrix.
    pub imatrix: bool,
    /// On the Pareto front.
    pub front: bool,
}

/// A rectangle in SVG coordinates: (x0, y0, x1, y1).
type Rect = (f64, f64, f64, f64);

fn overlaps(a: &Rect, b: &Rect) -> bool {
    a.0 < b.2 && b.0 < a.2 && a.1 < b.3 && b.1 < a.3
}

/// Small rectangles along the segment from `a` to `b` (every 4 px), as label obstacles.
fn segment_obstacles(a: (f64, f64), b: (f64, f64)) -> Vec<Rect> {
    let len = ((b.0 - a.0).powi(2) + (b.1 - a.1).powi(2)).sqrt();
    let n = (len / 4.0).ceil().max(1.0) as usize;
    (0..=n)
        .map(|i| {
            let t = i as f64 / n as f64;
            let (x, y) = (a.0 + t * (b.0 - a.0), a.1 + t * (b.1 - a.1));
            (x - 2.0, y - 2.0, x + 2.0, y + 2.0)
        })
        .collect()
}

/// Places each label near its point where it overlaps no placed label, no marker (`markers`,
/// one per point) and no other obstacle, inside the plot; returns (x, y, anchor) per point
/// (the text's baseline position).
fn place_labels(
    pts: &[(f64, f64, &str)],
    markers: &[Rect],
    obstacles: &[Rect],
    plot: Rect,
) -> Vec<(f64, f64, &'static str)> {
    let mut placed: Vec<Rect> = Vec::new();
    let mut out = Vec::with_capacity(pts.len());
    for &(x, y, text) in pts {
        let w = text.chars().count() as f64 * CHAR_W;
        let h = FONT;
        // Candidates: right, left, above, below, then further out diagonally.
        let mut cands: Vec<(f64, f64, &'static str)> = Vec::new();
        for d in [0.0, 6.0, 12.0, 18.0, 24.0, 36.0, 48.0] {
            cands.push((x + 11.0, y + 4.0 - d, "start"));
            cands.push((x + 11.0, y + 4.0 + d, "start"));
            cands.push((x - 11.0, y + 4.0 - d, "end"));
            cands.push((x - 11.0, y + 4.0 + d, "end"));
            cands.push((x, y - 11.0 - d, "middle"));
            cands.push((x, y + 19.0 + d, "middle"));
        }
        let rect = |&(tx, ty, anchor): &(f64, f64, &str)| -> Rect {
            let x0 = match anchor {
                "start" => tx,
                "end" => tx - w,
                _ => tx - w / 2.0,
            };
            (x0, ty - h + 2.0, x0 + w, ty + 2.0)
        };
        let free = |c: &(f64, f64, &'static str)| {
            let r = rect(c);
            r.0 >= plot.0
                && r.2 <= plot.2
                && r.1 >= plot.1
                && r.3 <= plot.3
                && !placed.iter().chain(obstacles).any(|p| overlaps(p, &r))
                && !markers.iter().any(|m| overlaps(m, &r))
        };
        let best = cands.iter().copied().find(free).unwrap_or(cands[0]);
        placed.push(rect(&best));
        out.push(best);
    }
    out
}

/// The SVG: `title` on top, `subtitle` below it (the text, positions, reference).
pub fn kld_chart(points: &[Point], title: &str, subtitle: &str) -> String {
    let pw = W - LEFT - RIGHT;
    let ph = H - TOP - BOTTOM;
    let finite: Vec<&Point> = points
        .iter()
        .filter(|p| p.x.is_finite() && p.y.is_finite() && p.y > 0.0)
        .collect();
    let (mut x0, mut x1) = finite
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), p| {
            (a.min(p.x), b.max(p.x))
        });
    let (mut y0, mut y1) = finite
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), p| {
            (a.min(p.y), b.max(p.y))
        });
    if !x0.is_finite() {
        (x0, x1, y0, y1) = (2.0, 9.0, 1e-3, 1.0);
    }
    // x: whole bits around the data; y: whole decades.
    let (x0, x1) = ((x0 - 0.3).floor().max(0.0), (x1 + 0.3).ceil());
    let (d0, d1) = (
        y0.log10().floor(),
        y1.log10().ceil().max(y0.log10().floor() + 1.0),
    );
    let sx = |x: f64| LEFT + (x - x0) / (x1 - x0) * pw;
    let sy = |y: f64| TOP + ph - (y.log10() - d0) / (d1 - d0) * ph;

    let mut s = String::new();
    let _ = writeln!(
        s,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{W}\" height=\"{H}\" \
         viewBox=\"0 0 {W} {H}\" font-family=\"sans-serif\" font-size=\"{FONT}\">"
    );
    let _ = writeln!(s, "<rect width=\"{W}\" height=\"{H}\" fill=\"white\"/>");
    let _ = writeln!(
        s,
        "<text x=\"{}\" y=\"22\" text-anchor=\"middle\" font-size=\"15\">{}</text>",
        W / 2.0,
        escape(title)
    );
    let _ = writeln!(
        s,
        "<text x=\"{}\" y=\"40\" text-anchor=\"middle\" fill=\"#555\">{}</text>",
        W / 2.0,
        escape(subtitle)
    );
    // Grid and ticks: decades labelled, 2× and 5× as light lines.
    for d in (d0 as i32)..=(d1 as i32) {
        for m in [1.0, 2.0, 5.0] {
            let v = m * 10f64.powi(d);
            if v.log10() > d1 + 1e-9 {
                continue;
            }
            let y = sy(v);
            let (stroke, label) = if m == 1.0 {
                ("#ccc", true)
            } else {
                ("#eee", false)
            };
            let _ = writeln!(
                s,
                "<line x1=\"{LEFT}\" y1=\"{y:.1}\" x2=\"{:.1}\" y2=\"{y:.1}\" stroke=\"{stroke}\"/>",
                LEFT + pw
            );
            let text = if label || ph / (d1 - d0) > 120.0 {
                format!("{v}")
            } else {
                String::new()
            };
            if !text.is_empty() {
                let _ = writeln!(
                    s,
                    "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\" fill=\"{}\">{text}</text>",
                    LEFT - 6.0,
                    y + 4.0,
                    if label { "#000" } else { "#888" }
                );
            }
        }
    }
    for t in ticks(x0, x1, 8) {
        let x = sx(t);
        let _ = writeln!(
            s,
            "<line x1=\"{x:.1}\" y1=\"{TOP}\" x2=\"{x:.1}\" y2=\"{:.1}\" stroke=\"#eee\"/>",
            TOP + ph
        );
        let _ = writeln!(
            s,
            "<text x=\"{x:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
            TOP + ph + 18.0,
            fmt_tick(t)
        );
    }
    let _ = writeln!(
        s,
        "<rect x=\"{LEFT}\" y=\"{TOP}\" width=\"{pw}\" height=\"{ph}\" fill=\"none\" \
         stroke=\"#333\"/>"
    );
    let _ = writeln!(
        s,
        "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" font-size=\"13\">bits per weight \
         (all tensors of the file)</text>",
        LEFT + pw / 2.0,
        H - 14.0
    );
    let _ = writeln!(
        s,
        "<text transform=\"translate(18 {:.1}) rotate(-90)\" text-anchor=\"middle\" \
         font-size=\"13\">mean KL divergence from the reference (nats, log scale)</text>",
        TOP + ph / 2.0
    );

    // The Pareto front, joined in increasing bits.
    let mut front: Vec<&&Point> = finite.iter().filter(|p| p.front).collect();
    front.sort_by(|a, b| a.x.total_cmp(&b.x));
    let mut obstacles: Vec<Rect> = Vec::new();
    for pair in front.windows(2) {
        obstacles.extend(segment_obstacles(
            (sx(pair[0].x), sy(pair[0].y)),
            (sx(pair[1].x), sy(pair[1].y)),
        ));
    }
    if front.len() > 1 {
        let path: Vec<String> = front
            .iter()
            .map(|p| format!("{:.1},{:.1}", sx(p.x), sy(p.y)))
            .collect();
        let _ = writeln!(
            s,
            "<polyline points=\"{}\" fill=\"none\" stroke=\"#2a9d3a\" stroke-width=\"1.5\" \
             stroke-dasharray=\"5 3\"/>",
            path.join(" ")
        );
    }
    for p in &finite {
        let (x, y) = (sx(p.x), sy(p.y));
        if p.front {
            let _ = writeln!(
                s,
                "<circle cx=\"{x:.1}\" cy=\"{y:.1}\" r=\"8\" fill=\"none\" stroke=\"#2a9d3a\" \
                 stroke-width=\"1.5\"/>"
            );
        }
        if p.imatrix {
            let _ = writeln!(
                s,
                "<path d=\"M{x:.1},{:.1} L{:.1},{y:.1} L{x:.1},{:.1} L{:.1},{y:.1} Z\" \
                 fill=\"#e8702a\"/>",
                y - 5.5,
                x + 5.5,
                y + 5.5,
                x - 5.5
            );
        } else {
            let _ = writeln!(
                s,
                "<circle cx=\"{x:.1}\" cy=\"{y:.1}\" r=\"4.5\" fill=\"#1f5fbf\"/>"
            );
        }
    }
    let anchors: Vec<(f64, f64, &str)> = finite
        .iter()
        .map(|p| (sx(p.x), sy(p.y), p.label.as_str()))
        .collect();
    let markers: Vec<Rect> = finite
        .iter()
        .map(|p| {
            let (x, y, r) = (sx(p.x), sy(p.y), if p.front { 9.0 } else { 6.0 });
            (x - r, y - r, x + r, y + r)
        })
        .collect();
    // The legend's box is an obstacle too.
    obstacles.push((LEFT + pw - 198.0, TOP + 4.0, LEFT + pw - 16.0, TOP + 62.0));
    let plot = (LEFT + 2.0, TOP + 2.0, LEFT + pw - 2.0, TOP + ph - 2.0);
    let placed = place_labels(&anchors, &markers, &obstacles, plot);
    for (p, (tx, ty, anchor)) in finite.iter().zip(placed) {
        let _ = writeln!(
            s,
            "<text x=\"{tx:.1}\" y=\"{ty:.1}\" text-anchor=\"{anchor}\" fill=\"{}\">{}</text>",
            if p.imatrix { "#a84a10" } else { "#173f7f" },
            escape(&p.label)
        );
    }
    // Legend, top right.
    let lx = LEFT + pw - 190.0;
    let ly = TOP + 14.0;
    let _ = writeln!(
        s,
        "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"182\" height=\"58\" fill=\"white\" \
         stroke=\"#bbb\"/>",
        lx - 8.0,
        ly - 10.0
    );
    let _ = writeln!(
        s,
        "<circle cx=\"{lx:.1}\" cy=\"{ly:.1}\" r=\"4.5\" fill=\"#1f5fbf\"/>\
         <text x=\"{:.1}\" y=\"{:.1}\">plain</text>",
        lx + 12.0,
        ly + 4.0
    );
    let y2 = ly + 17.0;
    let _ = writeln!(
        s,
        "<path d=\"M{lx:.1},{:.1} L{:.1},{y2:.1} L{lx:.1},{:.1} L{:.1},{y2:.1} Z\" \
         fill=\"#e8702a\"/><text x=\"{:.1}\" y=\"{:.1}\">with importance matrix</text>",
        y2 - 5.5,
        lx + 5.5,
        y2 + 5.5,
        lx - 5.5,
        lx + 12.0,
        y2 + 4.0
    );
    let y3 = ly + 34.0;
    let _ = writeln!(
        s,
        "<circle cx=\"{lx:.1}\" cy=\"{y3:.1}\" r=\"8\" fill=\"none\" stroke=\"#2a9d3a\" \
         stroke-width=\"1.5\"/><text x=\"{:.1}\" y=\"{:.1}\">Pareto front</text>",
        lx + 12.0,
        y3 + 4.0
    );
    s.push_str("</svg>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chart_has_every_point_and_the_front() {
        let pts = vec![
            Point {
                label: "q8_0".into(),
                x: 8.5,
                y: 0.002,
                imatrix: false,
                front: true,
            },
            Point {
                label: "q2_k".into(),
                x: 3.0,
                y: 0.4,
                imatrix: true,
                front: true,
            },
        ];
        let svg = kld_chart(&pts, "t <x>", "s");
        assert!(svg.contains(">q8_0<") && svg.contains(">q2_k<"));
        assert!(svg.contains("polyline") && svg.contains("t &lt;x&gt;"));
        assert!(svg.ends_with("</svg>\n"));
    }
}
