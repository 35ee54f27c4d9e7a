//! The training loss curve as a small self-contained SVG.

use crate::trainer::{EpochRecord, StepRecord};

/// Train loss per step (line) and validation loss per epoch (dots).
pub fn loss_svg(steps: &[StepRecord], epochs: &[EpochRecord]) -> String {
    let (w, h, pad) = (640.0f64, 320.0f64, 48.0f64);
    let max_step = steps.last().map(|s| s.step).unwrap_or(1).max(1) as f64;
    let vals = steps
        .iter()
        .map(|s| s.loss)
        .chain(epochs.iter().filter_map(|e| e.val_loss))
        .filter(|v| v.is_finite());
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for v in vals {
        lo = lo.min(v);
        hi = hi.max(v);
    }
    if !lo.is_finite() {
        lo = 0.0;
        hi = 1.0;
    }
    if hi - lo < 1e-9 {
        hi = lo + 1.0;
    }
    let x = |s: f64| pad + (s / max_step) * (w - 2.0 * pad);
    let y = |v: f64| h - pad - (v - lo) / (hi - lo) * (h - 2.0 * pad);
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\" font-family=\"sans-serif\" font-size=\"12\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <line x1=\"{pad}\" y1=\"{b}\" x2=\"{r}\" y2=\"{b}\" stroke=\"#444\"/>\n\
         <line x1=\"{pad}\" y1=\"{pad}\" x2=\"{pad}\" y2=\"{b}\" stroke=\"#444\"/>\n\
         <text x=\"{cx}\" y=\"{ty}\" text-anchor=\"middle\">optimizer step</text>\n\
         <text x=\"12\" y=\"{cy}\" transform=\"rotate(-90 12 {cy})\" text-anchor=\"middle\">loss</text>\n\
         <text x=\"{pad}\" y=\"20\">training loss (line), validation loss per epoch (dots)</text>\n",
        b = h - pad,
        r = w - pad,
        cx = w / 2.0,
        ty = h - 10.0,
        cy = h / 2.0
    );
    for (v, label) in [(lo, lo), (hi, hi), ((lo + hi) / 2.0, (lo + hi) / 2.0)] {
        svg.push_str(&format!(
            "<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{label:.3}</text>\n",
            pad - 4.0,
            y(v) + 4.0
        ));
    }
    svg.push_str(&format!(
        "<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>\n",
        w - pad,
        h - pad + 16.0,
        max_step as usize
    ));
    if !steps.is_empty() {
        let pts: Vec<String> = steps
            .iter()
            .filter(|s| s.loss.is_finite())
            .map(|s| format!("{:.1},{:.1}", x(s.step as f64), y(s.loss)))
            .collect();
        svg.push_str(&format!(
            "<polyline fill=\"none\" stroke=\"#1f77b4\" stroke-width=\"1.5\" points=\"{}\"/>\n",
            pts.join(" ")
        ));
    }
    let per_epoch = if epochs.is_empty() {
        0.0
    } else {
        max_step / epochs.len() as f64
    };
    for e in epochs {
        if let Some(v) = e.val_loss {
            svg.push_str(&format!(
                "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"4\" fill=\"#d62728\"><title>epoch {} validation loss {v:.4}</title></circle>\n",
                x(per_epoch * e.epoch as f64),
                y(v),
                e.epoch
            ));
        }
    }
    svg.push_str("</svg>\n");
    svg
}
