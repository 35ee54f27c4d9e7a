//! A version's evaluation baseline: what its answers looked like when it was evaluated
//! (output tokens per answer, and the share of each [`FormatClass`]), recorded when it is
//! registered so its live answers can be tested against it for drift ([`crate::drift`]).
//!
//! The baseline is `output_baseline.json` beside the adapter (`hone retrain --eval` writes it
//! from the new version's answers to the evaluation set); `registry add` copies it into the
//! version's record. A version without one shows "no baseline".

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{Error, Result};

/// The file a run folder keeps its evaluation baseline in.
pub const BASELINE_FILE: &str = "output_baseline.json";

/// The shape of one answer. The same function ([`classify`]) sorts evaluation answers into the
/// baseline and live answers into a version's numbers, so the two are comparable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FormatClass {
    /// Generation stopped at `max_tokens` (whatever the text): a cut answer.
    Cut,
    /// Nothing but whitespace.
    Empty,
    /// A JSON object (`{...}`), alone after trimming whitespace.
    JsonObject,
    /// A JSON array.
    JsonArray,
    /// Another JSON value alone: a string, number, `true`, `false` or `null`.
    JsonOther,
    /// Anything else: prose, JSON with text around it, broken JSON.
    Text,
}

impl FormatClass {
    pub const ALL: [FormatClass; 6] = [
        FormatClass::JsonObject,
        FormatClass::JsonArray,
        FormatClass::JsonOther,
        FormatClass::Text,
        FormatClass::Empty,
        FormatClass::Cut,
    ];

    /// The name in JSON, metrics labels and the status.
    pub fn as_str(self) -> &'static str {
        match self {
            FormatClass::Cut => "cut",
            FormatClass::Empty => "empty",
            FormatClass::JsonObject => "json_object",
            FormatClass::JsonArray => "json_array",
            FormatClass::JsonOther => "json_other",
            FormatClass::Text => "text",
        }
    }
}

/// The class of an answer; `cut` when generation stopped at `max_tokens` (finish reason
/// `length`), which wins over the text.
pub fn classify(text: &str, cut: bool) -> FormatClass {
    if cut {
        return FormatClass::Cut;
    }
    let t = text.trim();
    if t.is_empty() {
        return FormatClass::Empty;
    }
    // Only text that could be JSON is parsed (prose is the common case for plain answers).
    let could_be_json = matches!(
        t.as_bytes()[0],
        b'{' | b'[' | b'"' | b'-' | b'0'..=b'9' | b't' | b'f' | b'n'
    );
    if !could_be_json {
        return FormatClass::Text;
    }
    match serde_json::from_str::<Value>(t) {
        Ok(Value::Object(_)) => FormatClass::JsonObject,
        Ok(Value::Array(_)) => FormatClass::JsonArray,
        Ok(_) => FormatClass::JsonOther,
        Err(_) => FormatClass::Text,
    }
}

/// The shares of the classes present, most frequent first: `json_object 95.0%, text 5.0%`
/// (`-` for none).
pub fn format_shares(counts: &BTreeMap<FormatClass, u64>) -> String {
    let n: u64 = counts.values().sum();
    let mut v: Vec<(&FormatClass, &u64)> = counts.iter().filter(|(_, c)| **c > 0).collect();
    if v.is_empty() {
        return "-".into();
    }
    v.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    v.iter()
        .map(|(c, k)| format!("{} {:.1}%", c.as_str(), 100.0 * **k as f64 / n as f64))
        .collect::<Vec<_>>()
        .join(", ")
}

/// One answer of the evaluation: its output tokens (the stop token excluded) and class.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Answer {
    pub tokens: u64,
    pub format: FormatClass,
}

/// What a version's evaluation answers looked like.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutputBaseline {
    /// What was answered (e.g. the evaluation file).
    pub source: String,
    pub answers: u64,
    /// Output tokens per answer: mean, sample variance, quantiles.
    pub tokens_mean: f64,
    pub tokens_var: f64,
    pub tokens_p50: f64,
    pub tokens_p90: f64,
    pub tokens_max: f64,
    /// Answers per [`FormatClass`] (its [`FormatClass::as_str`] name); classes with none are
    /// left out.
    pub formats: BTreeMap<FormatClass, u64>,
}

impl OutputBaseline {
    /// The baseline of some answers; `None` when there are none.
    pub fn from_answers(source: &str, answers: &[Answer]) -> Option<Self> {
        if answers.is_empty() {
            return None;
        }
        let n = answers.len() as f64;
        let mut toks: Vec<f64> = answers.iter().map(|a| a.tokens as f64).collect();
        let mean = toks.iter().sum::<f64>() / n;
        let var = if answers.len() > 1 {
            toks.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0)
        } else {
            0.0
        };
        toks.sort_by(f64::total_cmp);
        // nearest rank, as the live latency quantiles
        let q = |p: f64| toks[((p * n).ceil() as usize).clamp(1, toks.len()) - 1];
        let mut formats = BTreeMap::new();
        for a in answers {
            *formats.entry(a.format).or_insert(0) += 1;
        }
        Some(Self {
            source: source.to_string(),
            answers: answers.len() as u64,
            tokens_mean: mean,
            tokens_var: var,
            tokens_p50: q(0.5),
            tokens_p90: q(0.9),
            tokens_max: toks[toks.len() - 1],
            formats,
        })
    }

    /// The baseline of evaluation answers given as (output tokens, text), generated with at
    /// most `max_tokens` tokens: an answer that used them all was cut (an answer that stopped
    /// on its own has fewer, its stop token not counted). Answers without a token count are
    /// left out.
    pub fn from_outputs<'a>(
        source: &str,
        outputs: impl IntoIterator<Item = (Option<u64>, &'a str)>,
        max_tokens: u64,
    ) -> Option<Self> {
        let answers: Vec<Answer> = outputs
            .into_iter()
            .filter_map(|(tokens, text)| {
                let tokens = tokens?;
                Some(Answer {
                    tokens,
                    format: classify(text, tokens >= max_tokens),
                })
            })
            .collect();
        Self::from_answers(source, &answers)
    }

    /// The baseline in `dir` (its [`BASELINE_FILE`]), if there is one.
    pub fn read(dir: &Path) -> Result<Option<Self>> {
        let p = dir.join(BASELINE_FILE);
        let text = match std::fs::read_to_string(&p) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io(&p, e)),
        };
        let b: Self = serde_json::from_str(&text)
            .map_err(|e| Error::invalid(format!("{}: {e}", p.display())))?;
        if b.answers == 0 || b.formats.values().sum::<u64>() != b.answers {
            return Err(Error::invalid(format!(
                "{}: the format counts ({}) do not add up to `answers` ({})",
                p.display(),
                b.formats.values().sum::<u64>(),
                b.answers
            )));
        }
        if !(b.tokens_mean.is_finite() && b.tokens_var.is_finite() && b.tokens_var >= 0.0) {
            return Err(Error::invalid(format!(
                "{}: tokens_mean and tokens_var must be finite (and the variance at least 0)",
                p.display()
            )));
        }
        Ok(Some(b))
    }

    /// Writes it as `dir`'s [`BASELINE_FILE`].
    pub fn write(&self, dir: &Path) -> Result<()> {
        let p = dir.join(BASELINE_FILE);
        let text = serde_json::to_string_pretty(self)
            .map_err(|e| Error::invalid(format!("{}: {e}", p.display())))?;
        Ok(hone_model::atomic::write_file(&p, text.as_bytes())?)
    }

    /// One line for people: `24 answers (eval.jsonl): 7.2 tokens per answer (p50 7, p90 9,
    /// max 12); json_object 95.8%, cut 4.2%`.
    pub fn summary(&self) -> String {
        format!(
            "{} answers ({}): {:.1} tokens per answer (p50 {}, p90 {}, max {}); {}",
            self.answers,
            self.source,
            self.tokens_mean,
            self.tokens_p50,
            self.tokens_p90,
            self.tokens_max,
            format_shares(&self.formats)
        )
    }

    /// The share of `class` among the answers.
    pub fn share(&self, class: FormatClass) -> f64 {
        self.formats.get(&class).copied().unwrap_or(0) as f64 / self.answers as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_answers() {
        use FormatClass::*;
        for (text, cut, want) in [
            ("{\"label\": \"Entailment\"}", false, JsonObject),
            ("  {\"a\": [1, 2]}\n", false, JsonObject),
            ("[1, 2, 3]", false, JsonArray),
            ("\"Entailment\"", false, JsonOther),
            ("42", false, JsonOther),
            ("true", false, JsonOther),
            ("null", false, JsonOther),
            ("Entailment", false, Text),
            ("false positive", false, Text),
            ("{\"label\": \"Entailment\"", false, Text),
            ("Here it is: {\"a\": 1}", false, Text),
            ("{\"a\": 1} trailing", false, Text),
            ("", false, Empty),
            (" \n\t", false, Empty),
            ("{\"label\": \"Entailment\"}", true, Cut),
            ("", true, Cut),
        ] {
            assert_eq!(classify(text, cut), want, "{text:?} cut={cut}");
        }
    }

    #[test]
    fn summarises_answers_and_round_trips() {
        let a = |tokens, format| Answer { tokens, format };
        let answers = [
            a(10, FormatClass::JsonObject),
            a(12, FormatClass::JsonObject),
            a(14, FormatClass::JsonObject),
            a(40, FormatClass::Text),
        ];
        let b = OutputBaseline::from_answers("eval.jsonl", &answers).unwrap();
        assert_eq!(b.answers, 4);
        // mean 19, deviations -9 -7 -5 21: squares 81+49+25+441 = 596, / 3
        assert_eq!(b.tokens_mean, 19.0);
        assert!((b.tokens_var - 596.0 / 3.0).abs() < 1e-12);
        assert_eq!(
            (b.tokens_p50, b.tokens_p90, b.tokens_max),
            (12.0, 40.0, 40.0)
        );
        assert_eq!(b.formats[&FormatClass::JsonObject], 3);
        assert_eq!(b.share(FormatClass::Text), 0.25);
        assert_eq!(b.share(FormatClass::Cut), 0.0);
        assert_eq!(
            b.summary(),
            "4 answers (eval.jsonl): 19.0 tokens per answer (p50 12, p90 40, max 40); \
             json_object 75.0%, text 25.0%"
        );
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(OutputBaseline::read(dir.path()).unwrap(), None);
        b.write(dir.path()).unwrap();
        let text = std::fs::read_to_string(dir.path().join(BASELINE_FILE)).unwrap();
        assert!(text.contains("\"json_object\": 3"), "{text}");
        let back = OutputBaseline::read(dir.path()).unwrap().unwrap();
        // serde_json's float parsing may differ in the last bit
        assert!((back.tokens_var - b.tokens_var).abs() < 1e-9);
        assert_eq!((back.answers, &back.formats), (b.answers, &b.formats));
        assert_eq!(
            (back.tokens_mean, back.tokens_p90),
            (b.tokens_mean, b.tokens_p90)
        );
        assert!(OutputBaseline::from_answers("x", &[]).is_none());
    }

    #[test]
    fn evaluation_outputs_at_the_token_limit_are_cut() {
        let b = OutputBaseline::from_outputs(
            "outputs.jsonl",
            [
                (Some(6), "{\"label\": \"positive\"}"),
                (Some(2), "negative"),
                (Some(8), "{\"label\": \"pos"),
                (None, "an endpoint that gave no usage"),
                (Some(0), ""),
            ],
            8,
        )
        .unwrap();
        assert_eq!(b.answers, 4);
        let f = |c| b.formats.get(&c).copied().unwrap_or(0);
        use FormatClass::*;
        assert_eq!((f(JsonObject), f(Text), f(Cut), f(Empty)), (1, 1, 1, 1));
        assert_eq!(b.tokens_mean, 4.0);
        assert!(OutputBaseline::from_outputs("x", [(None, "a")], 8).is_none());
    }

    #[test]
    fn a_baseline_that_does_not_add_up_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join(BASELINE_FILE),
            r#"{"source": "e", "answers": 5, "tokens_mean": 3, "tokens_var": 1, "tokens_p50": 3,
                "tokens_p90": 4, "tokens_max": 4, "formats": {"text": 4}}"#,
        )
        .unwrap();
        let e = OutputBaseline::read(dir.path()).unwrap_err().to_string();
        assert!(
            e.contains(BASELINE_FILE) && e.contains("(4)") && e.contains("(5)"),
            "{e}"
        );
        std::fs::write(
            dir.path().join(BASELINE_FILE),
            r#"{"source": "e", "answers": 1, "formats": {"yaml": 1}}"#,
        )
        .unwrap();
        let e = OutputBaseline::read(dir.path()).unwrap_err().to_string();
        assert!(e.contains(BASELINE_FILE), "{e}");
    }
}
