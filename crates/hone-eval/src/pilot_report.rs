//! The pilot's verdict page: `pilot.json` (everything), `pilot.html` (self-contained, the
//! verdict first, then a chart of every arm with its interval, the data, the training and the
//! answers) and the terminal summary.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::report::write_atomic;
use crate::svg::esc;
use crate::verdict::{Call, Interval, Role, Verdict};

/// One arm as the page shows it: the verdict's numbers plus how it ran.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PilotArm {
    pub name: String,
    /// What answered (model, adapter, endpoint).
    pub description: String,
    pub fewshot: usize,
    /// Answers that failed (an endpoint error); they score 0.
    pub failures: usize,
    pub latency_p50_s: Option<f64>,
    pub cost_per_1k_usd: Option<f64>,
}

/// What the data step found.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PilotData {
    pub file: PathBuf,
    /// Examples read.
    pub examples: usize,
    /// Exact duplicates dropped (the first of each group kept).
    pub duplicates_dropped: usize,
    pub near_duplicate_groups: usize,
    pub contradiction_groups: usize,
    pub overrepresented_groups: usize,
    /// The task as detected or given, in words (e.g. "classification into 6 labels").
    pub task: String,
    pub train: usize,
    /// Of `train`, held back for early stopping.
    pub validation: usize,
    pub held_out: usize,
    /// What one read, trained-on and held-out item is, plural: "examples" (also when empty),
    /// or "documents" for review data.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub unit: String,
}

impl PilotData {
    /// The items' word, plural ("examples" unless `unit` says otherwise).
    pub fn unit(&self) -> &str {
        if self.unit.is_empty() {
            "examples"
        } else {
            &self.unit
        }
    }

    /// The items' word, singular.
    pub fn unit_one(&self) -> &str {
        let u = self.unit();
        u.strip_suffix('s').unwrap_or(u)
    }
}

/// What the training step did.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PilotTraining {
    /// e.g. "LoRA r 16, alpha 32, all linear layers, lr 2e-4, cosine, early stopping".
    pub recipe: String,
    pub steps: usize,
    pub epochs: usize,
    pub seconds: f64,
    pub best_val_loss: Option<f64>,
    pub adapter: PathBuf,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loss_svg: Option<String>,
}

/// One held-out example with every arm's answer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PilotExample {
    pub id: String,
    pub input: String,
    pub reference: String,
    /// (arm, answer, score).
    pub answers: Vec<(String, String, f64)>,
}

/// The whole pilot.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PilotReport {
    pub verdict: Verdict,
    pub arms: Vec<PilotArm>,
    pub data: PilotData,
    pub training: PilotTraining,
    /// Why there is no endpoint arm, when there is none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint_missing: Option<String>,
    pub examples: Vec<PilotExample>,
    /// Seconds from start to report.
    pub seconds: f64,
    /// The evaluation report with every metric (report.html of `hone eval`).
    pub eval_report: PathBuf,
}

/// Paths of what [`write`] wrote.
pub struct Written {
    pub json: PathBuf,
    pub html: PathBuf,
}

/// Writes `pilot.json` and `pilot.html` into `dir`.
pub fn write(r: &PilotReport, dir: &Path) -> Result<Written> {
    let w = Written {
        json: dir.join("pilot.json"),
        html: dir.join("pilot.html"),
    };
    let json = serde_json::to_vec_pretty(r).map_err(|e| Error::Invalid(e.to_string()))?;
    write_atomic(&w.json, &json)?;
    write_atomic(&w.html, html(r).as_bytes())?;
    Ok(w)
}

fn pts(x: f64) -> String {
    format!("{:+.1}", x * 100.0)
}

fn pct(x: f64) -> String {
    format!("{:.1}", x * 100.0)
}

fn interval(i: &Interval) -> String {
    format!("{} to {}", pct(i.low), pct(i.high))
}

fn gain_interval(i: &Interval) -> String {
    format!("{} to {}", pts(i.low), pts(i.high))
}

fn secs(v: Option<f64>) -> String {
    v.map(|s| format!("{s:.2} s")).unwrap_or_else(|| "–".into())
}

fn usd(v: Option<f64>) -> String {
    match v {
        Some(x) if x >= 1.0 => format!("${x:.2}"),
        Some(x) => format!("${x:.4}"),
        None => "–".into(),
    }
}

fn role_word(r: Role) -> &'static str {
    match r {
        Role::Base => "base",
        Role::FineTuned => "fine-tuned",
        Role::Endpoint => "endpoint",
    }
}

/// The terminal summary: the verdict, the arms and where the page is.
pub fn text(r: &PilotReport) -> String {
    let v = &r.verdict;
    let mut s = String::new();
    let _ = writeln!(s, "Verdict: {}", v.call.headline());
    let _ = writeln!(
        s,
        "  fine-tuned vs {}: {} points of {} (95% interval {}) on {} held-out {}",
        v.baseline,
        pts(v.gain.estimate),
        v.metric,
        gain_interval(&v.gain),
        v.examples,
        r.data.unit()
    );
    if let Some(e) = &v.vs_endpoint {
        let _ = writeln!(
            s,
            "  fine-tuned vs endpoint: {} points (95% interval {})",
            pts(e.estimate),
            gain_interval(e)
        );
    }
    let _ = writeln!(s, "  rule: {}", v.rule_text);
    let _ = writeln!(s, "  {}", v.advice);
    let _ = writeln!(s);
    let _ = writeln!(
        s,
        "| arm | role | {} | 95% interval | failed | latency p50 | cost per 1,000 |",
        v.metric
    );
    let _ = writeln!(s, "|---|---|---|---|---|---|---|");
    for (a, m) in v.arms.iter().zip(&r.arms) {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} | {} |",
            a.name,
            role_word(a.role),
            pct(a.score.estimate),
            interval(&a.score),
            m.failures,
            secs(m.latency_p50_s),
            usd(m.cost_per_1k_usd)
        );
    }
    if let Some(why) = &r.endpoint_missing {
        let _ = writeln!(s, "\nNo endpoint arm: {why}");
    }
    s
}

const CSS: &str = "body{font-family:system-ui,sans-serif;max-width:1000px;margin:2em auto;padding:0 1em;color:#222}\
table{border-collapse:collapse;margin:1em 0;font-size:14px}th,td{border:1px solid #ccc;padding:4px 8px;text-align:right;vertical-align:top}\
th:first-child,td:first-child{text-align:left}th{background:#f0f4f8}.muted{color:#666}\
.verdict{border-radius:8px;padding:12px 18px;margin:1em 0}.verdict h2{margin:.2em 0}\
.meaningful{background:#e6f4ea;border:2px solid #34a853}.promising{background:#fef7e0;border:2px solid #f9ab00}\
.no_clear_gain{background:#fdecea;border:2px solid #d93025}.missing{background:#f1f3f4;padding:8px 12px;border-radius:6px}\
td.text{text-align:left;max-width:260px;white-space:pre-wrap;font-size:12px}.hit{background:#e6f4ea}.miss{background:#fdecea}";

/// Bars of each arm's score with its 95% interval as a whisker, the base arm the gain is
/// measured against outlined.
pub fn arms_svg(v: &Verdict) -> String {
    let n = v.arms.len().max(1) as f64;
    let (pad_l, pad_r, pad_t, pad_b) = (48.0, 16.0, 40.0, 70.0);
    let bar_w = 70.0;
    let gap = 40.0;
    let w = (pad_l + pad_r + n * (bar_w + gap)).max(360.0);
    let h = 300.0;
    let ph = h - pad_t - pad_b;
    let y = |x: f64| pad_t + ph * (1.0 - x.clamp(0.0, 1.0));
    let mut s = format!(
        "<svg id=\"arms\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{w:.0}\" height=\"{h:.0}\" \
         viewBox=\"0 0 {w:.0} {h:.0}\" role=\"img\"><title>{} by arm, 95% intervals</title>\
         <text x=\"{pad_l}\" y=\"22\" font-size=\"14\" font-weight=\"bold\">{} by arm (95% interval)</text>",
        esc(&v.metric),
        esc(&v.metric)
    );
    for k in 0..=4 {
        let t = k as f64 / 4.0;
        let yy = y(t);
        let _ = write!(
            s,
            "<line x1=\"{pad_l}\" x2=\"{:.0}\" y1=\"{yy:.1}\" y2=\"{yy:.1}\" stroke=\"#e0e0e0\"/>\
             <text x=\"{:.0}\" y=\"{:.1}\" font-size=\"11\" text-anchor=\"end\">{:.0}</text>",
            w - pad_r,
            pad_l - 6.0,
            yy + 4.0,
            t * 100.0
        );
    }
    for (i, a) in v.arms.iter().enumerate() {
        let x = pad_l + gap / 2.0 + i as f64 * (bar_w + gap);
        let colour = match a.role {
            Role::Base => "#9aa0a6",
            Role::FineTuned => "#1a73e8",
            Role::Endpoint => "#a142f4",
        };
        let top = y(a.score.estimate);
        let outline = if a.name == v.baseline {
            " stroke=\"#202124\" stroke-width=\"2\""
        } else {
            ""
        };
        let cx = x + bar_w / 2.0;
        let _ = write!(
            s,
            "<rect x=\"{x:.1}\" y=\"{top:.1}\" width=\"{bar_w}\" height=\"{:.1}\" fill=\"{colour}\"{outline}/>\
             <line x1=\"{cx:.1}\" x2=\"{cx:.1}\" y1=\"{:.1}\" y2=\"{:.1}\" stroke=\"#202124\" stroke-width=\"2\"/>\
             <line x1=\"{:.1}\" x2=\"{:.1}\" y1=\"{:.1}\" y2=\"{:.1}\" stroke=\"#202124\" stroke-width=\"2\"/>\
             <line x1=\"{:.1}\" x2=\"{:.1}\" y1=\"{:.1}\" y2=\"{:.1}\" stroke=\"#202124\" stroke-width=\"2\"/>\
             <text x=\"{cx:.1}\" y=\"{:.1}\" font-size=\"12\" text-anchor=\"middle\">{}</text>\
             <text x=\"{cx:.1}\" y=\"{:.1}\" font-size=\"11\" text-anchor=\"middle\">{}</text>",
            (pad_t + ph - top).max(0.0),
            y(a.score.low),
            y(a.score.high),
            cx - 8.0,
            cx + 8.0,
            y(a.score.low),
            y(a.score.low),
            cx - 8.0,
            cx + 8.0,
            y(a.score.high),
            y(a.score.high),
            (y(a.score.high) - 6.0).max(pad_t - 2.0),
            pct(a.score.estimate),
            h - pad_b + 18.0,
            esc(&a.name)
        );
    }
    s.push_str("</svg>");
    s
}

/// The self-contained verdict page.
pub fn html(r: &PilotReport) -> String {
    let v = &r.verdict;
    let unit = esc(r.data.unit());
    let mut s = String::new();
    let class = match v.call {
        Call::Meaningful => "meaningful",
        Call::Promising => "promising",
        Call::NoClearGain => "no_clear_gain",
    };
    let _ = write!(
        s,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>hone pilot</title>\
         <style>{CSS}</style></head><body><h1>Pilot: fine-tune or prompt?</h1>\
         <p class=\"muted\">{} {unit} from <code>{}</code>: {} trained on, {} held out; task: {}. {:.0} s in all.</p>\
         <div class=\"verdict {class}\" id=\"verdict\"><h2>{}</h2>\
         <p><b>{} points</b> of {} for the fine-tuned model over <b>{}</b> \
         (95% paired interval {}) on {} held-out {unit}.</p>",
        r.data.examples,
        esc(&r.data.file.display().to_string()),
        r.data.train,
        r.data.held_out,
        esc(&r.data.task),
        r.seconds,
        esc(&capitalise(v.call.headline())),
        pts(v.gain.estimate),
        esc(&v.metric),
        esc(&v.baseline),
        gain_interval(&v.gain),
        v.examples
    );
    if let Some(e) = &v.vs_endpoint {
        let _ = write!(
            s,
            "<p>Against the endpoint: <b>{} points</b> (95% interval {}).</p>",
            pts(e.estimate),
            gain_interval(e)
        );
    }
    let _ = write!(
        s,
        "<p>{}</p><p class=\"muted\">Rule: {}.</p></div>",
        esc(&v.advice),
        esc(&v.rule_text)
    );
    if let Some(why) = &r.endpoint_missing {
        let _ = write!(
            s,
            "<p class=\"missing\" id=\"endpoint-missing\"><b>No frontier arm.</b> {}</p>",
            esc(why)
        );
    }
    s.push_str(&arms_svg(v));
    let _ = write!(
        s,
        "<h2>Arms</h2><table><tr><th>arm</th><th>what answered</th><th>{}</th><th>95% interval</th>\
         <th>failed</th><th>latency p50</th><th>cost per 1,000</th></tr>",
        esc(&v.metric)
    );
    for (a, m) in v.arms.iter().zip(&r.arms) {
        let _ = write!(
            s,
            "<tr><td>{}</td><td class=\"text\">{}{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&a.name),
            esc(&m.description),
            if m.fewshot > 0 {
                format!(", {} examples in the prompt", m.fewshot)
            } else {
                String::new()
            },
            pct(a.score.estimate),
            interval(&a.score),
            m.failures,
            secs(m.latency_p50_s),
            usd(m.cost_per_1k_usd)
        );
    }
    let d = &r.data;
    let _ = write!(
        s,
        "</table><p class=\"muted\">Every metric of every arm: <code>{}</code>.</p>\
         <h2>Data</h2><ul><li>{} {unit} read; {} exact duplicates dropped</li>\
         <li>{} near-duplicate groups (kept on one side of the split), {} contradicting answer groups, \
         {} over-represented patterns (<code>hone data qa</code> shows them)</li>\
         <li>task: {}</li><li>{} for training ({} of them held back for early stopping), {} held out for the verdict</li></ul>",
        esc(&r.eval_report.display().to_string()),
        d.examples,
        d.duplicates_dropped,
        d.near_duplicate_groups,
        d.contradiction_groups,
        d.overrepresented_groups,
        esc(&d.task),
        d.train,
        d.validation,
        d.held_out
    );
    let t = &r.training;
    let _ = write!(
        s,
        "<h2>Training</h2><p>{}: {} steps over {} epochs in {:.0} s; best validation loss {}. \
         Adapter: <code>{}</code>.</p>",
        esc(&t.recipe),
        t.steps,
        t.epochs,
        t.seconds,
        t.best_val_loss
            .map(|x| format!("{x:.4}"))
            .unwrap_or_else(|| "–".into()),
        esc(&t.adapter.display().to_string())
    );
    if let Some(svg) = &t.loss_svg {
        s.push_str(svg);
    }
    let _ = write!(
        s,
        "<h2>Held-out answers</h2><table><tr><th>{}</th><th>input</th><th>reference</th>",
        esc(r.data.unit_one())
    );
    let names: Vec<&str> = v.arms.iter().map(|a| a.name.as_str()).collect();
    for n in &names {
        let _ = write!(s, "<th>{}</th>", esc(n));
    }
    s.push_str("</tr>");
    for e in &r.examples {
        let _ = write!(
            s,
            "<tr><td>{}</td><td class=\"text\">{}</td><td class=\"text\">{}</td>",
            esc(&e.id),
            esc(&clip(&e.input, 400)),
            esc(&clip(&e.reference, 200))
        );
        for (_, answer, score) in &e.answers {
            let cls = if *score >= 0.999 { "hit" } else { "miss" };
            let _ = write!(
                s,
                "<td class=\"text {cls}\">{}</td>",
                esc(&clip(answer, 200))
            );
        }
        s.push_str("</tr>");
    }
    s.push_str("</table></body></html>\n");
    s
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

fn clip(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(max).collect();
        t.push('…');
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verdict::{judge, Arm, Rule};

    fn report(with_endpoint: bool) -> PilotReport {
        let mut arms = vec![
            Arm {
                name: "base zero-shot".into(),
                role: Role::Base,
                scores: vec![0.0, 0.0, 1.0, 0.0],
            },
            Arm {
                name: "fine-tuned".into(),
                role: Role::FineTuned,
                scores: vec![1.0, 1.0, 1.0, 0.0],
            },
        ];
        if with_endpoint {
            arms.push(Arm {
                name: "frontier <gpt>".into(),
                role: Role::Endpoint,
                scores: vec![1.0, 1.0, 1.0, 1.0],
            });
        }
        let v = judge("accuracy", &arms, Rule::default(), 1).unwrap();
        PilotReport {
            arms: arms
                .iter()
                .map(|a| PilotArm {
                    name: a.name.clone(),
                    description: "smollm2".into(),
                    fewshot: 0,
                    failures: 0,
                    latency_p50_s: Some(0.25),
                    cost_per_1k_usd: Some(0.0069),
                })
                .collect(),
            examples: vec![PilotExample {
                id: "x1".into(),
                input: "a <clause>".into(),
                reference: "survival".into(),
                answers: arms
                    .iter()
                    .map(|a| (a.name.clone(), "survival".into(), a.scores[0]))
                    .collect(),
            }],
            verdict: v,
            data: PilotData {
                examples: 5,
                train: 4,
                held_out: 4,
                task: "classification into 6 labels".into(),
                ..Default::default()
            },
            training: PilotTraining::default(),
            endpoint_missing: (!with_endpoint).then(|| "no --endpoint given".into()),
            seconds: 12.0,
            eval_report: "eval/report.html".into(),
        }
    }

    #[test]
    fn the_page_leads_with_the_verdict_and_escapes_names() {
        let r = report(true);
        let h = html(&r);
        let verdict_at = h.find("id=\"verdict\"").unwrap();
        assert!(verdict_at < h.find("<svg").unwrap());
        assert!(h.contains("+50.0 points"), "the gain 0.75 - 0.25");
        assert!(h.contains("frontier &lt;gpt&gt;") && !h.contains("<gpt>"));
        assert!(h.contains("Against the endpoint"));
        assert!(!h.contains("endpoint-missing"));
        // One bar (rect) per arm.
        assert_eq!(arms_svg(&r.verdict).matches("<rect").count(), 3);
        let t = text(&r);
        assert!(
            t.contains("fine-tuned vs base zero-shot: +50.0 points"),
            "{t}"
        );
        assert!(t.contains("fine-tuned vs endpoint: -25.0 points"), "{t}");
    }

    #[test]
    fn a_missing_endpoint_is_said_on_the_page_and_in_the_terminal() {
        let r = report(false);
        assert!(html(&r).contains("id=\"endpoint-missing\""));
        assert!(text(&r).contains("No endpoint arm: no --endpoint given"));
        let dir = tempfile::tempdir().unwrap();
        let w = write(&r, dir.path()).unwrap();
        let back: PilotReport = serde_json::from_slice(&std::fs::read(w.json).unwrap()).unwrap();
        assert_eq!(back, r);
        assert!(w.html.is_file());
    }

    #[test]
    fn review_data_is_counted_in_documents_and_examples_stay_the_default() {
        let mut r = report(false);
        assert!(html(&r).contains("on 4 held-out examples"));
        assert!(html(&r).contains("<th>example</th>"));
        r.data.unit = "documents".into();
        let h = html(&r);
        assert!(h.contains("5 documents from"), "{h}");
        assert!(h.contains("on 4 held-out documents") && h.contains("<th>document</th>"));
        assert!(h.contains("5 documents read"));
        assert!(text(&r).contains("on 4 held-out documents"), "{}", text(&r));
        let json = serde_json::to_string(&r).unwrap();
        assert!(json.contains("\"unit\":\"documents\""));
        // A pilot.json written before the field reads back as examples.
        r.data.unit = String::new();
        let old = serde_json::to_string(&r).unwrap();
        assert!(!old.contains("\"unit\""));
        let back: PilotReport = serde_json::from_str(&old).unwrap();
        assert_eq!(back.data.unit(), "examples");
    }
}
