//! `hone data stats`: counts, the length distribution (tokens with a model, else words) as a
//! text and an SVG histogram, and the label distribution.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use serde::Serialize;

use crate::error::Result;
use crate::progress::Progress;
use crate::source::{Format, Records};
use crate::tokens::TokenCounter;

#[derive(Clone, Debug, Default, Serialize)]
pub struct Stats {
    pub records: usize,
    pub invalid: usize,
    pub messages: usize,
    pub with_system: usize,
    pub multi_turn: usize,
    pub groups: usize,
    /// "tokens" or "words".
    pub unit: String,
    pub lengths: LengthSummary,
    pub histogram: Vec<Bin>,
    pub labels: BTreeMap<String, usize>,
}

#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct LengthSummary {
    pub min: usize,
    pub mean: f64,
    pub p50: usize,
    pub p90: usize,
    pub p99: usize,
    pub max: usize,
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Bin {
    /// Lengths in `lo..hi`.
    pub lo: usize,
    pub hi: usize,
    pub count: usize,
}

/// Nearest-rank percentile of sorted values.
fn percentile(sorted: &[u32], p: f64) -> usize {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil().max(1.0) as usize;
    sorted[rank.min(sorted.len()) - 1] as usize
}

pub fn summarize(lengths: &mut [u32]) -> LengthSummary {
    lengths.sort_unstable();
    if lengths.is_empty() {
        return LengthSummary::default();
    }
    LengthSummary {
        min: lengths[0] as usize,
        mean: lengths.iter().map(|&x| x as f64).sum::<f64>() / lengths.len() as f64,
        p50: percentile(lengths, 50.0),
        p90: percentile(lengths, 90.0),
        p99: percentile(lengths, 99.0),
        max: lengths[lengths.len() - 1] as usize,
    }
}

/// Equal-width bins of a "round" width (1, 2, 5, 10, 20, 50, ...) covering min..=max, the
/// first starting at a multiple of the width.
pub fn histogram(lengths: &[u32], bins: usize) -> Vec<Bin> {
    let (Some(&min), Some(&max)) = (lengths.iter().min(), lengths.iter().max()) else {
        return Vec::new();
    };
    let raw = ((max - min) as usize + 1).div_ceil(bins.max(1));
    let mut width = 1usize;
    let mut step = 0;
    while width < raw {
        width = if step % 3 == 1 {
            width / 2 * 5
        } else {
            width * 2
        };
        step += 1;
    }
    let first = min as usize / width;
    let n = max as usize / width - first + 1;
    let mut out: Vec<Bin> = (0..n)
        .map(|i| Bin {
            lo: (first + i) * width,
            hi: (first + i + 1) * width,
            count: 0,
        })
        .collect();
    for &l in lengths {
        out[l as usize / width - first].count += 1;
    }
    out
}

pub fn compute(
    path: &Path,
    format: &Format,
    counter: Option<&TokenCounter>,
    progress: &dyn Progress,
) -> Result<Stats> {
    let mut recs = Records::open(path, format)?;
    progress.start("stats", recs.total_bytes());
    let mut s = Stats {
        unit: if counter.is_some() { "tokens" } else { "words" }.into(),
        ..Default::default()
    };
    let mut lengths: Vec<u32> = Vec::new();
    let mut groups = std::collections::HashSet::new();
    while let Some(rec) = recs.next_record()? {
        s.records += 1;
        let Ok(ex) = rec.parsed else {
            s.invalid += 1;
            continue;
        };
        s.messages += ex.messages.len();
        if ex.messages.first().is_some_and(|m| m.role == "system") {
            s.with_system += 1;
        }
        if ex.messages.iter().filter(|m| m.role == "assistant").count() > 1 {
            s.multi_turn += 1;
        }
        if let Some(g) = &ex.group {
            groups.insert(crate::hash::hash_bytes(g.as_bytes()));
        }
        *s.labels
            .entry(ex.label.clone().unwrap_or_else(|| "(none)".into()))
            .or_default() += 1;
        let len = match counter {
            Some(c) => c.count(&ex)?,
            None => ex
                .messages
                .iter()
                .map(|m| m.content.split_whitespace().count())
                .sum(),
        };
        lengths.push(len.min(u32::MAX as usize) as u32);
        if s.records.is_multiple_of(1024) {
            progress.set(recs.bytes_read());
        }
    }
    progress.finish();
    s.groups = groups.len();
    s.histogram = histogram(&lengths, 12);
    s.lengths = summarize(&mut lengths);
    Ok(s)
}

impl Stats {
    /// The readable report with a text histogram.
    pub fn to_text(&self) -> String {
        let mut o = String::new();
        let _ = writeln!(
            o,
            "records       {} ({} invalid)",
            self.records, self.invalid
        );
        let _ = writeln!(o, "messages      {}", self.messages);
        let _ = writeln!(o, "with system   {}", self.with_system);
        let _ = writeln!(o, "multi-turn    {}", self.multi_turn);
        let _ = writeln!(o, "groups        {}", self.groups);
        let l = &self.lengths;
        let _ = writeln!(
            o,
            "length ({})  min {} · mean {:.1} · p50 {} · p90 {} · p99 {} · max {}",
            self.unit, l.min, l.mean, l.p50, l.p90, l.p99, l.max
        );
        let top = self
            .histogram
            .iter()
            .map(|b| b.count)
            .max()
            .unwrap_or(0)
            .max(1);
        for b in &self.histogram {
            let bar = "#".repeat((b.count * 40).div_ceil(top));
            let _ = writeln!(o, "  {:>6}-{:<6} {:>8} {bar}", b.lo, b.hi - 1, b.count);
        }
        let _ = writeln!(o, "labels");
        for (k, v) in &self.labels {
            let _ = writeln!(
                o,
                "  {k:<24} {v:>8}  {:5.1}%",
                100.0 * *v as f64 / (self.records - self.invalid).max(1) as f64
            );
        }
        o
    }

    /// The length histogram as a standalone SVG bar chart.
    pub fn histogram_svg(&self) -> String {
        let (w, h, pad) = (640.0f64, 320.0f64, 40.0f64);
        let n = self.histogram.len().max(1) as f64;
        let top = self
            .histogram
            .iter()
            .map(|b| b.count)
            .max()
            .unwrap_or(0)
            .max(1) as f64;
        let bw = (w - 2.0 * pad) / n;
        let mut o = String::new();
        let _ = write!(o, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\" font-family=\"sans-serif\" font-size=\"10\">");
        let _ = write!(o, "<text x=\"{}\" y=\"16\" text-anchor=\"middle\" font-size=\"13\">Example length ({}), {} examples</text>", w / 2.0, self.unit, self.records - self.invalid);
        let _ = write!(
            o,
            "<line x1=\"{pad}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"#333\"/>",
            h - pad,
            w - pad,
            h - pad
        );
        for (i, b) in self.histogram.iter().enumerate() {
            let bh = (h - 2.0 * pad - 10.0) * b.count as f64 / top;
            let x = pad + i as f64 * bw;
            let _ = write!(o, "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"#4a7ab5\"><title>{}-{}: {}</title></rect>", x + 1.0, h - pad - bh, bw - 2.0, bh, b.lo, b.hi - 1, b.count);
            let _ = write!(
                o,
                "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
                x + bw / 2.0,
                h - pad - bh - 3.0,
                b.count
            );
            let _ = write!(
                o,
                "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
                x + bw / 2.0,
                h - pad + 14.0,
                b.lo
            );
        }
        o.push_str("</svg>\n");
        o
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_and_histogram_by_hand() {
        let mut l = vec![5u32, 1, 9, 3, 7, 10, 2, 8, 4, 6];
        let s = summarize(&mut l);
        assert_eq!(
            s,
            LengthSummary {
                min: 1,
                mean: 5.5,
                p50: 5,
                p90: 9,
                p99: 10,
                max: 10
            }
        );
        // max 10, 4 bins -> raw width 3 -> round width 5: bins 0-4, 5-9, 10-14.
        let h = histogram(&l, 4);
        assert_eq!(
            h.iter().map(|b| (b.lo, b.count)).collect::<Vec<_>>(),
            [(0, 4), (5, 5), (10, 1)]
        );
        // 615..=702 in 12 bins: raw width 8 -> 10; bins start at 610.
        let h = histogram(&[615, 650, 702], 12);
        assert_eq!((h[0].lo, h.len(), h[4].count, h[9].count), (610, 10, 1, 1));
    }
}
