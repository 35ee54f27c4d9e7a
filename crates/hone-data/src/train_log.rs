//! A training run's log, as the trainer writes it into the run folder and evaluation reads it
//! back: one JSON line per optimizer step and per epoch in `metrics.jsonl`, the run's summary
//! in `train_summary.json`, and the loss curve as a small self-contained SVG (`loss.svg`).

use std::path::Path;

use serde::{Deserialize, Serialize};

/// The per-step and per-epoch records, one JSON object a line.
pub const METRICS_FILE: &str = "metrics.jsonl";
/// The loss curve ([`loss_svg`]).
pub const LOSS_PLOT_FILE: &str = "loss.svg";
/// How the run ended, as JSON (`seconds`, `final_train_loss`, `best_val_loss`, ...).
pub const SUMMARY_FILE: &str = "train_summary.json";

/// One optimizer step, as logged to `metrics.jsonl`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StepRecord {
    pub step: usize,
    pub epoch: usize,
    pub loss: f64,
    pub lr: f64,
    pub grad_norm: f64,
    pub tokens_per_s: f64,
}

/// One finished epoch.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct EpochRecord {
    pub epoch: usize,
    pub train_loss: f64,
    pub val_loss: Option<f64>,
}

/// The text of `metrics.jsonl`: the steps, then the epochs, one JSON object a line.
pub fn metrics_jsonl(steps: &[StepRecord], epochs: &[EpochRecord]) -> String {
    let mut s = String::new();
    for r in steps {
        s.push_str(&serde_json::to_string(r).expect("a step record serializes"));
        s.push('\n');
    }
    for e in epochs {
        s.push_str(&serde_json::to_string(e).expect("an epoch record serializes"));
        s.push('\n');
    }
    s
}

/// The records of `dir/metrics.jsonl` (none when the file is missing; lines that are
/// neither record are skipped).
pub fn read_metrics(dir: &Path) -> (Vec<StepRecord>, Vec<EpochRecord>) {
    let mut steps = Vec::new();
    let mut epochs = Vec::new();
    if let Ok(text) = std::fs::read_to_string(dir.join(METRICS_FILE)) {
        for line in text.lines() {
            if let Ok(s) = serde_json::from_str::<StepRecord>(line) {
                steps.push(s);
            } else if let Ok(e) = serde_json::from_str::<EpochRecord>(line) {
                epochs.push(e);
            }
        }
    }
    (steps, epochs)
}

/// The plot area both loss charts share: 640 x 320, 48 px margins, a y range and the last step.
struct Frame {
    lo: f64,
    hi: f64,
    max_step: f64,
}

impl Frame {
    const W: f64 = 640.0;
    const H: f64 = 320.0;
    const PAD: f64 = 48.0;

    /// The range of the finite values (0 to 1 when there are none; never empty).
    fn new(values: impl Iterator<Item = f64>, max_step: usize) -> Self {
        let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
        for v in values.filter(|v| v.is_finite()) {
            lo = lo.min(v);
            hi = hi.max(v);
        }
        if !lo.is_finite() {
            (lo, hi) = (0.0, 1.0);
        }
        if hi - lo < 1e-9 {
            hi = lo + 1.0;
        }
        Self {
            lo,
            hi,
            max_step: max_step.max(1) as f64,
        }
    }
    fn x(&self, step: f64) -> f64 {
        Self::PAD + (step / self.max_step) * (Self::W - 2.0 * Self::PAD)
    }
    fn y(&self, v: f64) -> f64 {
        Self::H - Self::PAD - (v - self.lo) / (self.hi - self.lo) * (Self::H - 2.0 * Self::PAD)
    }
    /// The opening tag, axes, axis titles, the y labels (low, middle, high) and the last step.
    fn open(&self, y_title: &str) -> String {
        let (w, h, pad) = (Self::W, Self::H, Self::PAD);
        let mut svg = format!(
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\" font-family=\"sans-serif\" font-size=\"12\">\n\
             <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
             <line x1=\"{pad}\" y1=\"{b}\" x2=\"{r}\" y2=\"{b}\" stroke=\"#444\"/>\n\
             <line x1=\"{pad}\" y1=\"{pad}\" x2=\"{pad}\" y2=\"{b}\" stroke=\"#444\"/>\n\
             <text x=\"{cx}\" y=\"{ty}\" text-anchor=\"middle\">optimizer step</text>\n\
             <text x=\"12\" y=\"{cy}\" transform=\"rotate(-90 12 {cy})\" text-anchor=\"middle\">{y_title}</text>\n",
            b = h - pad,
            r = w - pad,
            cx = w / 2.0,
            ty = h - 10.0,
            cy = h / 2.0
        );
        for v in [self.lo, self.hi, (self.lo + self.hi) / 2.0] {
            svg.push_str(&format!(
                "<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{v:.3}</text>\n",
                pad - 4.0,
                self.y(v) + 4.0
            ));
        }
        svg.push_str(&format!(
            "<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>\n",
            w - pad,
            h - pad + 16.0,
            self.max_step as usize
        ));
        svg
    }
    /// One run's loss per step as a line.
    fn line(&self, steps: &[StepRecord], color: &str, title: Option<&str>) -> String {
        let pts: Vec<String> = steps
            .iter()
            .filter(|s| s.loss.is_finite())
            .map(|s| format!("{:.1},{:.1}", self.x(s.step as f64), self.y(s.loss)))
            .collect();
        let title = title
            .map(|t| format!("<title>{}</title>", xml_escape(t)))
            .unwrap_or_default();
        format!(
            "<polyline fill=\"none\" stroke=\"{color}\" stroke-width=\"1.5\" points=\"{}\">{title}</polyline>\n",
            pts.join(" ")
        )
    }
}

/// Train loss per step (line) and validation loss per epoch (dots).
pub fn loss_svg(steps: &[StepRecord], epochs: &[EpochRecord]) -> String {
    let vals = steps
        .iter()
        .map(|s| s.loss)
        .chain(epochs.iter().filter_map(|e| e.val_loss));
    let f = Frame::new(vals, steps.last().map(|s| s.step).unwrap_or(1));
    let mut svg = f.open("loss");
    svg.push_str(&format!(
        "<text x=\"{}\" y=\"20\">training loss (line), validation loss per epoch (dots)</text>\n",
        Frame::PAD
    ));
    if !steps.is_empty() {
        svg.push_str(&f.line(steps, "#1f77b4", None));
    }
    let per_epoch = if epochs.is_empty() {
        0.0
    } else {
        f.max_step / epochs.len() as f64
    };
    for e in epochs {
        if let Some(v) = e.val_loss {
            svg.push_str(&format!(
                "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"4\" fill=\"#d62728\"><title>epoch {} validation loss {v:.4}</title></circle>\n",
                f.x(per_epoch * e.epoch as f64),
                f.y(v),
                e.epoch
            ));
        }
    }
    svg.push_str("</svg>\n");
    svg
}

/// Several runs' training loss per step on one chart (a line and a legend entry each, in
/// the order given), e.g. the same recipe in f32 and in bf16. Steps beyond the shortest run
/// are drawn too; the y axis spans every finite loss.
pub fn loss_compare_svg(runs: &[(&str, &[StepRecord])]) -> String {
    const COLORS: [&str; 6] = [
        "#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b",
    ];
    let max_step = runs
        .iter()
        .filter_map(|(_, s)| s.last().map(|r| r.step))
        .max()
        .unwrap_or(1);
    let f = Frame::new(
        runs.iter().flat_map(|(_, s)| s.iter().map(|r| r.loss)),
        max_step,
    );
    let mut svg = f.open("training loss");
    for (i, (name, steps)) in runs.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        svg.push_str(&f.line(steps, color, Some(name)));
        let ly = 20.0 + 16.0 * i as f64;
        svg.push_str(&format!(
            "<line x1=\"{a}\" y1=\"{ly}\" x2=\"{b}\" y2=\"{ly}\" stroke=\"{color}\" stroke-width=\"3\"/>\n\
             <text x=\"{t}\" y=\"{ty}\">{}</text>\n",
            xml_escape(name),
            a = Frame::W - 200.0,
            b = Frame::W - 180.0,
            t = Frame::W - 174.0,
            ty = ly + 4.0
        ));
    }
    svg.push_str("</svg>\n");
    svg
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn steps(losses: &[f64]) -> Vec<StepRecord> {
        losses
            .iter()
            .enumerate()
            .map(|(i, &loss)| StepRecord {
                step: i + 1,
                epoch: 1,
                loss,
                lr: 1e-3,
                grad_norm: 1.0,
                tokens_per_s: 100.0,
            })
            .collect()
    }

    #[test]
    fn compare_draws_one_line_and_legend_per_run_on_a_shared_scale() {
        let (a, b) = (steps(&[3.0, 2.0, 1.0]), steps(&[4.0, 2.5]));
        let svg = loss_compare_svg(&[("f32 <ref>", &a), ("bf16", &b)]);
        assert_eq!(svg.matches("<polyline").count(), 2);
        assert!(svg.contains("f32 &lt;ref&gt;") && svg.contains(">bf16<"));
        // The y axis spans both runs (1.0 to 4.0); the x axis ends at the longest run's step.
        assert!(svg.contains(">1.000<") && svg.contains(">4.000<") && svg.contains(">3<"));
        // The lowest loss (run a, step 3) sits on the bottom of the plot, the highest (run b,
        // step 1) on the top: y = 320 - 48 = 272 and y = 48.
        assert!(svg.contains("592.0,272.0"), "{svg}");
        assert!(svg.contains("229.3,48.0"), "{svg}");
    }

    #[test]
    fn metrics_round_trip_through_the_run_folder() {
        let d = tempfile::tempdir().unwrap();
        let steps = vec![
            StepRecord {
                step: 1,
                epoch: 1,
                loss: 2.5,
                lr: 1e-4,
                grad_norm: 0.75,
                tokens_per_s: 1000.0,
            },
            StepRecord {
                step: 2,
                epoch: 1,
                loss: 2.0,
                lr: 2e-4,
                grad_norm: 0.5,
                tokens_per_s: 1100.0,
            },
        ];
        let epochs = vec![EpochRecord {
            epoch: 1,
            train_loss: 2.25,
            val_loss: Some(2.125),
        }];
        let text = metrics_jsonl(&steps, &epochs);
        assert_eq!(text.lines().count(), 3);
        std::fs::write(d.path().join(METRICS_FILE), text).unwrap();
        assert_eq!(read_metrics(d.path()), (steps.clone(), epochs.clone()));
        assert_eq!(read_metrics(&d.path().join("absent")), (vec![], vec![]));

        let svg = loss_svg(&steps, &epochs);
        assert!(
            svg.starts_with("<svg ") && svg.ends_with("</svg>\n"),
            "{svg}"
        );
        // The line: step 1 at the left edge of the plot, step 2 at the right.
        assert!(svg.contains("points=\"320.0,48.0 592.0,272.0\""), "{svg}");
        assert!(svg.contains("epoch 1 validation loss 2.1250"), "{svg}");
    }
}
