//! A static picture of an answer: `POST /predict?format=svg`.
//!
//! Written as SVG text by hand rather than with a plotting crate: the picture is
//! a polyline, rectangles and labels on ECG paper, ~150 lines, with no fonts or
//! raster back end to ship. It shows a time range of the filtered lead on a
//! 0.2 s x 0.5 mV grid, abnormal segments shaded, the segment model's attention
//! as a heat strip under the trace, and every beat marked with its AAMI class.

use std::fmt::Write;

use crate::service::answer::{PredictResponse, Segment};

/// Colour of each beat class (N grey, S blue, V red, F orange, Q purple).
pub fn class_colour(label: &str) -> &'static str {
    match label {
        "S" => "#1f6fd1",
        "V" => "#d1301f",
        "F" => "#e08a00",
        "Q" => "#8a3fd1",
        _ => "#555555",
    }
}

/// The segment whose centre is nearest `t`: with 50 % overlap, every moment is
/// shown with the window in which it sat most centrally.
pub fn central_segment(segments: &[Segment], t: f64) -> Option<&Segment> {
    segments.iter().min_by(|a, b| {
        let da = ((a.start_s + a.end_s) / 2.0 - t).abs();
        let db = ((b.start_s + b.end_s) / 2.0 - t).abs();
        da.total_cmp(&db)
    })
}

/// The range a picture shows by default: the segment with the highest
/// probability of `positive` (the most abnormal one), else the first.
pub fn default_range(response: &PredictResponse, positive: &str) -> (f64, f64) {
    response
        .segments
        .iter()
        .max_by(|a, b| {
            let p = |s: &Segment| s.probabilities.get(positive).copied().unwrap_or(0.0);
            p(a).total_cmp(&p(b))
        })
        .map_or((0.0, 10.0), |s| (s.start_s, s.end_s))
}

/// The SVG of `response` between `start_s` and `end_s` (the answer must carry
/// `signal`, the filtered lead). `positive` is the segment model's abnormal label.
pub fn svg(response: &PredictResponse, start_s: f64, end_s: f64, positive: &str) -> String {
    let (width, left, right) = (1200.0, 50.0, 10.0);
    let (trace_top, trace_h, strip_h) = (40.0, 300.0, 24.0);
    let height = trace_top + trace_h + strip_h + 40.0;
    let plot_w = width - left - right;
    let span = (end_s - start_s).max(1e-3);
    let x = |t: f64| left + (t - start_s) / span * plot_w;
    let mut out = String::new();
    let _ = write!(
        out,
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">
<rect width="100%" height="100%" fill="#ffffff"/>
"##
    );
    let title = format!(
        "record {} ({}), {:.1}-{:.1} s: {}",
        escape(&response.record.name),
        escape(&response.record.lead),
        start_s,
        end_s,
        escape(&response.summary.label)
    );
    let _ = writeln!(
        out,
        r##"<text x="{left}" y="20" font-size="14">{title}</text>"##
    );
    // Abnormal segments, shaded.
    for s in response.segments.iter().filter(|s| s.label == positive) {
        let (a, b) = (s.start_s.max(start_s), s.end_s.min(end_s));
        if b > a {
            let _ = writeln!(
                out,
                r##"<rect class="abnormal" x="{:.1}" y="{trace_top}" width="{:.1}" height="{trace_h}" fill="#d1301f" fill-opacity="0.08"/>"##,
                x(a),
                x(b) - x(a)
            );
        }
    }
    // The trace's vertical scale: the range's robust extent.
    let signal = response.signal.as_ref();
    let rate = signal.map_or(1.0, |s| s.sampling_rate_hz);
    let values: &[f32] = signal.map_or(&[], |s| &s.values);
    let from = ((start_s * rate).floor().max(0.0) as usize).min(values.len());
    let to = ((end_s * rate).ceil().max(0.0) as usize).min(values.len());
    let shown = &values[from..to];
    let (lo, hi) = shown
        .iter()
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(l, h), &v| {
            (l.min(v), h.max(v))
        });
    let (lo, hi) = if lo.is_finite() && hi > lo {
        (lo as f64 - 0.1, hi as f64 + 0.1)
    } else {
        (-1.0, 1.0)
    };
    let y = |mv: f64| trace_top + (hi - mv) / (hi - lo) * trace_h;
    // ECG paper: 0.2 s and 0.5 mV lines.
    let mut grid = String::new();
    let mut t = (start_s / 0.2).ceil() * 0.2;
    while t <= end_s {
        let _ = write!(grid, "M{:.1} {trace_top}V{} ", x(t), trace_top + trace_h);
        t += 0.2;
    }
    let mut mv = (lo / 0.5).ceil() * 0.5;
    while mv <= hi {
        let _ = write!(grid, "M{left} {:.1}H{} ", y(mv), left + plot_w);
        mv += 0.5;
    }
    let _ = writeln!(
        out,
        r##"<path d="{grid}" stroke="#f3b6b6" stroke-width="0.5" fill="none"/>"##
    );
    // Seconds on the axis.
    let step = if span > 60.0 {
        10.0
    } else if span > 20.0 {
        5.0
    } else {
        1.0
    };
    let mut t = (start_s / step).ceil() * step;
    while t <= end_s {
        let _ = writeln!(
            out,
            r##"<text x="{:.1}" y="{}" text-anchor="middle" fill="#444">{t:.0} s</text>"##,
            x(t),
            trace_top + trace_h + strip_h + 18.0
        );
        t += step;
    }
    // The trace.
    let mut points = String::with_capacity(shown.len() * 12);
    for (i, &v) in shown.iter().enumerate() {
        let t = (from + i) as f64 / rate;
        let _ = write!(points, "{:.1},{:.1} ", x(t), y(v as f64));
    }
    let _ = writeln!(
        out,
        r##"<polyline class="trace" points="{points}" fill="none" stroke="#111" stroke-width="1"/>"##
    );
    // Attention heat strip: each token of the most central segment.
    let strip_y = trace_top + trace_h + 4.0;
    let cells = 300;
    for c in 0..cells {
        let t0 = start_s + span * c as f64 / cells as f64;
        let t1 = start_s + span * (c + 1) as f64 / cells as f64;
        let mid = (t0 + t1) / 2.0;
        let Some(seg) = central_segment(&response.segments, mid) else {
            continue;
        };
        let w = &seg.attention.weights;
        let k = ((mid - seg.start_s) / seg.attention.token_s).floor();
        if k < 0.0 || k as usize >= w.len() {
            continue;
        }
        // Relative to uniform attention: 1 / tokens is "looked nowhere in particular".
        let rel = (w[k as usize] as f64 * w.len() as f64 / 4.0).clamp(0.0, 1.0);
        let _ = writeln!(
            out,
            r##"<rect class="attention" x="{:.1}" y="{strip_y}" width="{:.2}" height="{strip_h}" fill="#ff7a00" fill-opacity="{rel:.3}"/>"##,
            x(t0),
            x(t1) - x(t0) + 0.3
        );
    }
    let _ = writeln!(
        out,
        r##"<text x="4" y="{}" fill="#444">attn</text>"##,
        strip_y + 16.0
    );
    // Beats with their class.
    for b in response
        .beats
        .iter()
        .filter(|b| b.time_s >= start_s && b.time_s <= end_s)
    {
        let (class, label) = match b.label.as_deref() {
            Some(l) => (format!("beat beat-{}", escape(l)), escape(l)),
            None => ("beat".to_string(), "|".to_string()),
        };
        let colour = class_colour(&label);
        let _ = writeln!(
            out,
            r##"<text class="{class}" x="{:.1}" y="{}" text-anchor="middle" fill="{colour}" font-weight="bold">{label}</text>"##,
            x(b.time_s),
            trace_top - 4.0
        );
    }
    out.push_str("</svg>\n");
    out
}

/// Text safe inside SVG elements.
fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}
