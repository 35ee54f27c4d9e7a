//! The TF-IDF + logistic-regression span classifier: the classic baseline the ContractNLI
//! paper reports beside its BERT models, trained here on the *same* documents as an adapter
//! and read through the *same* decisions ([`crate::aggregate`]) and calibration
//! ([`crate::calibrate`]), so `hone eval contractnli` compares the fine-tuned model with it on
//! equal data in one run (`hone review --tfidf-from TRAIN`, [`crate::tfidf_reviewer`]).
//!
//! - **Features** of a span: its lower-cased word unigrams and bigrams that occur in at least
//!   [`TfidfOptions::min_df`] training spans, weighted `(1 + ln tf) · idf` with the smoothed
//!   `idf = ln((1 + n) / (1 + df)) + 1`, and scaled to unit length.
//! - **Classifier**: one multinomial logistic regression over the 35 span labels of
//!   [`hone_data::review_layout`] (none, entails check *c*, contradicts check *c*), trained on
//!   the same targets as the model: a span that is evidence for several checks puts equal
//!   mass on each of its labels. Full-batch Adam on the mean cross-entropy plus an L2 penalty;
//!   with validation documents the penalty is chosen from [`L2_GRID`] by validation loss.
//!
//! **Beside an adapter** the same classifier is a second opinion: `hone train` (review data)
//! fits it on the training documents, keeps it as [`TFIDF_FILE`] in the adapter folder, and
//! the engine combines the two span distributions as a product of experts,
//! `p ∝ p_model^(1-w) · p_tfidf^w` ([`mix`]), with `w` chosen on the validation documents by
//! the decisions it gives (`crate::calibrate::choose_weight_by_decisions`; `w = 0` when the
//! classifier does not help; their cross-entropy at each weight, [`choose_weight`], is reported
//! beside it). On
//! ContractNLI the two make different mistakes: the model ranks evidence better, the
//! classifier tells entailment from contradiction better, and the product beats both.
//!
//! Written by hand rather than taken from a crate: it is a hundred lines over sparse vectors,
//! and the Rust ML crates that have it (linfa) would bring ndarray and a dense design matrix
//! for a 12,000-span x 20,000-term problem that is 99.7% zeros.

use std::collections::HashMap;
use std::path::Path;

use hone_data::contractnli::EvalDocument;
use hone_data::review_layout::{span_labels, LABELS};
use hone_model::safetensors_io::{self, F32Tensor};

use crate::{Error, Result};

/// L2 penalties tried when validation documents are given (the first without them).
pub const L2_GRID: [f64; 3] = [1e-5, 1e-4, 1e-3];

/// Training settings.
#[derive(Clone, Debug, PartialEq)]
pub struct TfidfOptions {
    /// Terms kept: those in at least this many training spans.
    pub min_df: usize,
    /// Full-batch Adam steps.
    pub steps: usize,
    pub learning_rate: f64,
}

impl Default for TfidfOptions {
    fn default() -> Self {
        Self {
            min_df: 2,
            steps: 300,
            learning_rate: 0.1,
        }
    }
}

/// A span as sparse features: (term index, weight), unit length.
type Sparse = Vec<(u32, f32)>;

/// The trained classifier.
#[derive(Clone, Debug)]
pub struct TfidfClassifier {
    terms: HashMap<String, u32>,
    idf: Vec<f32>,
    /// `LABELS` rows of `terms.len()` weights.
    weights: Vec<f32>,
    bias: [f32; LABELS],
    /// The L2 penalty it was trained with.
    pub l2: f64,
}

/// Lower-cased words (letters and digits) and the bigrams of neighbouring words.
fn terms_of(text: &str) -> Vec<String> {
    let words: Vec<String> = text
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(|w| w.to_lowercase())
        .collect();
    let mut out = Vec::with_capacity(words.len() * 2);
    for (i, w) in words.iter().enumerate() {
        out.push(w.clone());
        if let Some(next) = words.get(i + 1) {
            out.push(format!("{w} {next}"));
        }
    }
    out
}

/// The training examples of some documents: each span's text and its target distribution.
fn examples(docs: &[EvalDocument]) -> (Vec<String>, Vec<Vec<(usize, f32)>>) {
    let mut texts = Vec::new();
    let mut targets = Vec::new();
    for d in docs {
        let spans = hone_data::spans::pair_texts(&d.text, &d.spans);
        texts.extend(spans.iter().map(|t| t.to_string()));
        targets.extend(self::targets(d));
    }
    (texts, targets)
}

impl TfidfClassifier {
    /// A span's features: its terms weighted (1 + ln tf) idf, scaled to unit length.
    fn vectorize(&self, text: &str) -> Sparse {
        let mut tf: HashMap<u32, f32> = HashMap::new();
        for t in terms_of(text) {
            if let Some(&i) = self.terms.get(&t) {
                *tf.entry(i).or_default() += 1.0;
            }
        }
        let mut v: Sparse = tf
            .into_iter()
            .map(|(i, n)| (i, (1.0 + n.ln()) * self.idf[i as usize]))
            .collect();
        v.sort_by_key(|&(i, _)| i);
        let norm = v.iter().map(|&(_, x)| x * x).sum::<f32>().sqrt();
        if norm > 0.0 {
            for e in v.iter_mut() {
                e.1 /= norm;
            }
        }
        v
    }

    /// The label distribution of one vectorized span.
    fn probs_of(&self, x: &Sparse) -> [f32; LABELS] {
        let n = self.idf.len();
        let mut z = self.bias;
        for (k, zk) in z.iter_mut().enumerate() {
            let row = &self.weights[k * n..(k + 1) * n];
            *zk += x.iter().map(|&(i, v)| row[i as usize] * v).sum::<f32>();
        }
        softmax(&mut z);
        z
    }

    /// The label distribution of every span.
    pub fn span_probs(&self, texts: &[&str]) -> Vec<[f32; LABELS]> {
        texts
            .iter()
            .map(|t| self.probs_of(&self.vectorize(t)))
            .collect()
    }

    /// Terms in the vocabulary.
    pub fn vocabulary(&self) -> usize {
        self.idf.len()
    }

    /// Mean cross-entropy of the documents' spans against their targets.
    pub fn loss(&self, docs: &[EvalDocument]) -> f64 {
        let (texts, targets) = examples(docs);
        let probs: Vec<[f32; LABELS]> = texts
            .iter()
            .map(|t| self.probs_of(&self.vectorize(t)))
            .collect();
        cross_entropy(&probs, &targets)
    }

    /// Trains with each L2 penalty of [`L2_GRID`] and keeps the one with the lowest loss on
    /// `valid` (the first penalty when there are no validation documents). Returns it with
    /// its validation loss.
    pub fn fit_tuned(
        train: &[EvalDocument],
        valid: &[EvalDocument],
        opt: &TfidfOptions,
    ) -> Result<(Self, Option<f64>)> {
        if valid.is_empty() {
            return Ok((Self::fit(train, L2_GRID[0], opt)?, None));
        }
        let mut best: Option<(f64, Self)> = None;
        for &l2 in &L2_GRID {
            let c = Self::fit(train, l2, opt)?;
            let loss = c.loss(valid);
            if best.as_ref().is_none_or(|(b, _)| loss < *b) {
                best = Some((loss, c));
            }
        }
        let (loss, c) = best.expect("the grid is not empty");
        Ok((c, Some(loss)))
    }

    /// Trains on the spans of annotated documents with L2 penalty `l2`.
    pub fn fit(docs: &[EvalDocument], l2: f64, opt: &TfidfOptions) -> Result<Self> {
        let (texts, targets) = examples(docs);
        if texts.is_empty() {
            return Err(Error::Invalid(
                "the TF-IDF baseline needs training documents with spans".into(),
            ));
        }
        // Vocabulary: terms in at least min_df spans, in a fixed (sorted) order.
        let mut df: HashMap<String, usize> = HashMap::new();
        for t in &texts {
            let mut seen: Vec<String> = terms_of(t);
            seen.sort();
            seen.dedup();
            for s in seen {
                *df.entry(s).or_default() += 1;
            }
        }
        let mut kept: Vec<(String, usize)> =
            df.into_iter().filter(|(_, n)| *n >= opt.min_df).collect();
        kept.sort();
        let n_docs = texts.len() as f64;
        let idf: Vec<f32> = kept
            .iter()
            .map(|(_, n)| (((1.0 + n_docs) / (1.0 + *n as f64)).ln() + 1.0) as f32)
            .collect();
        let terms: HashMap<String, u32> = kept
            .into_iter()
            .enumerate()
            .map(|(i, (t, _))| (t, i as u32))
            .collect();
        let n = idf.len();
        let mut model = Self {
            terms,
            idf,
            weights: vec![0.0; LABELS * n],
            bias: [0.0; LABELS],
            l2,
        };
        let xs: Vec<Sparse> = texts.iter().map(|t| model.vectorize(t)).collect();
        let m = xs.len() as f32;
        // Adam over weights and bias together (bias last), full batch.
        let dim = LABELS * n + LABELS;
        let (mut m1, mut m2) = (vec![0f32; dim], vec![0f32; dim]);
        let (b1, b2, eps) = (0.9f32, 0.999f32, 1e-8f32);
        let lr = opt.learning_rate as f32;
        let mut grad = vec![0f32; dim];
        for step in 1..=opt.steps {
            // Gradient of the mean cross-entropy: (p - y) x for each example.
            for (k, g) in grad.iter_mut().enumerate().take(LABELS * n) {
                *g = l2 as f32 * model.weights[k];
            }
            grad[LABELS * n..].fill(0.0);
            for (x, y) in xs.iter().zip(&targets) {
                let mut d = model.probs_of(x);
                for &(k, w) in y {
                    d[k] -= w;
                }
                for (k, dk) in d.iter().enumerate() {
                    let dk = dk / m;
                    grad[LABELS * n + k] += dk;
                    let row = &mut grad[k * n..(k + 1) * n];
                    for &(i, v) in x {
                        row[i as usize] += dk * v;
                    }
                }
            }
            let c1 = 1.0 - b1.powi(step as i32);
            let c2 = 1.0 - b2.powi(step as i32);
            for j in 0..dim {
                let g = grad[j];
                m1[j] = b1 * m1[j] + (1.0 - b1) * g;
                m2[j] = b2 * m2[j] + (1.0 - b2) * g * g;
                let upd = lr * (m1[j] / c1) / ((m2[j] / c2).sqrt() + eps);
                if j < LABELS * n {
                    model.weights[j] -= upd;
                } else {
                    model.bias[j - LABELS * n] -= upd;
                }
            }
        }
        Ok(model)
    }
}

/// Weights tried for the model-classifier mixture (0: the model alone).
pub const WEIGHT_GRID: [f64; 11] = [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0];

/// Product of experts: each span's `p_model^(1-w) · p_tfidf^w`, renormalised. `w = 0` is the
/// model, `w = 1` the classifier.
pub fn mix(model: &[[f32; LABELS]], tfidf: &[[f32; LABELS]], w: f64) -> Vec<[f32; LABELS]> {
    let w = w.clamp(0.0, 1.0) as f32;
    model
        .iter()
        .zip(tfidf)
        .map(|(a, b)| {
            let mut z = [0f32; LABELS];
            for k in 0..LABELS {
                z[k] = (1.0 - w) * a[k].max(1e-30).ln() + w * b[k].max(1e-30).ln();
            }
            softmax(&mut z);
            z
        })
        .collect()
}

/// Each span's target distribution (equal mass on each of its gold labels).
pub fn targets(doc: &EvalDocument) -> Vec<Vec<(usize, f32)>> {
    span_labels(doc.spans.len(), &doc.labels)
        .into_iter()
        .map(|labels| {
            let w = 1.0 / labels.len() as f32;
            labels.iter().map(|l| (l.index(), w)).collect()
        })
        .collect()
}

/// Mean cross-entropy of span distributions against targets (both flattened over documents).
pub fn cross_entropy(probs: &[[f32; LABELS]], targets: &[Vec<(usize, f32)>]) -> f64 {
    if probs.is_empty() {
        return 0.0;
    }
    let total: f64 = probs
        .iter()
        .zip(targets)
        .map(|(p, y)| {
            y.iter()
                .map(|&(k, w)| -(w as f64) * (p[k].max(1e-12) as f64).ln())
                .sum::<f64>()
        })
        .sum();
    total / probs.len() as f64
}

/// The mixture weight of [`WEIGHT_GRID`] with the lowest cross-entropy on validation spans
/// (ties to the smaller weight), and the loss at every weight.
pub fn choose_weight(
    model: &[[f32; LABELS]],
    tfidf: &[[f32; LABELS]],
    targets: &[Vec<(usize, f32)>],
) -> (f64, Vec<(f64, f64)>) {
    let losses: Vec<(f64, f64)> = WEIGHT_GRID
        .iter()
        .map(|&w| (w, cross_entropy(&mix(model, tfidf, w), targets)))
        .collect();
    let best = losses.iter().fold((0.0, f64::INFINITY), |b, &(w, l)| {
        if l < b.1 - 1e-12 {
            (w, l)
        } else {
            b
        }
    });
    (best.0, losses)
}

/// The file a review adapter keeps its TF-IDF classifier in.
pub const TFIDF_FILE: &str = "tfidf.safetensors";

impl TfidfClassifier {
    /// Writes the classifier as safetensors: `weight` [35, terms], `bias` [35], `idf`
    /// [terms]; the terms, in column order, are a JSON array in the metadata.
    pub fn save(&self, path: &Path) -> Result<()> {
        let mut terms: Vec<(&str, u32)> =
            self.terms.iter().map(|(t, &i)| (t.as_str(), i)).collect();
        terms.sort_by_key(|&(_, i)| i);
        let terms: Vec<&str> = terms.into_iter().map(|(t, _)| t).collect();
        let n = self.idf.len();
        let tensors: [F32Tensor<'_>; 3] = [
            ("weight".into(), vec![LABELS, n], &self.weights[..]),
            ("bias".into(), vec![LABELS], &self.bias[..]),
            ("idf".into(), vec![n], &self.idf[..]),
        ];
        let meta = HashMap::from([
            ("format".to_string(), "hone-tfidf".to_string()),
            (
                "terms".to_string(),
                serde_json::to_string(&terms).map_err(|e| Error::Invalid(e.to_string()))?,
            ),
            ("l2".to_string(), self.l2.to_string()),
        ]);
        safetensors_io::write_f32(path, &tensors, Some(meta))?;
        Ok(())
    }

    /// Reads what [`TfidfClassifier::save`] wrote; a damaged or foreign file is an error
    /// naming it.
    pub fn load(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        let bad = |msg: String| Error::input(path, msg);
        let meta = safetensors_io::metadata(path, &bytes)?;
        if meta.get("format").map(String::as_str) != Some("hone-tfidf") {
            return Err(bad("not a hone TF-IDF classifier (metadata format)".into()));
        }
        let terms: Vec<String> = meta
            .get("terms")
            .and_then(|t| serde_json::from_str(t).ok())
            .ok_or_else(|| bad("metadata `terms` is missing or not a JSON list".into()))?;
        let l2 = meta.get("l2").and_then(|v| v.parse().ok()).unwrap_or(0.0);
        let st = safetensors_io::parse(path, &bytes)?;
        let n = terms.len();
        let read = |name: &str, shape: &[usize]| -> Result<Vec<f32>> {
            Ok(safetensors_io::tensor_f32_shaped(path, &st, name, shape)?)
        };
        let weights = read("weight", &[LABELS, n])?;
        let bias_v = read("bias", &[LABELS])?;
        let idf = read("idf", &[n])?;
        let mut bias = [0f32; LABELS];
        bias.copy_from_slice(&bias_v);
        let terms = terms
            .into_iter()
            .enumerate()
            .map(|(i, t)| (t, i as u32))
            .collect::<HashMap<_, _>>();
        if terms.len() != n {
            return Err(bad("metadata `terms` repeats a term".into()));
        }
        Ok(Self {
            terms,
            idf,
            weights,
            bias,
            l2,
        })
    }
}

fn softmax(z: &mut [f32; LABELS]) {
    let max = z.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0.0;
    for v in z.iter_mut() {
        *v = (*v - max).exp();
        sum += *v;
    }
    for v in z.iter_mut() {
        *v /= sum;
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use hone_data::contractnli::GoldLabel;
    use hone_data::nda::{DocLabel, CHECKS};
    use hone_data::review_layout::Label;
    use std::collections::BTreeMap;

    /// A document of `parts` (sentence, evidence for (check, label)).
    pub(crate) fn doc(id: &str, parts: &[(&str, Option<(usize, DocLabel)>)]) -> EvalDocument {
        let mut text = String::new();
        let mut spans = Vec::new();
        let mut labels: BTreeMap<String, GoldLabel> = CHECKS
            .iter()
            .map(|c| {
                (
                    c.id.to_string(),
                    GoldLabel {
                        label: DocLabel::NotMentioned,
                        spans: Vec::new(),
                    },
                )
            })
            .collect();
        for (i, (s, ev)) in parts.iter().enumerate() {
            let start = text.chars().count();
            text.push_str(s);
            spans.push([start, text.chars().count()]);
            text.push('\n');
            if let Some((c, l)) = ev {
                let g = labels.get_mut(CHECKS[*c].id).unwrap();
                g.label = *l;
                g.spans.push(i);
            }
        }
        EvalDocument {
            id: id.into(),
            file_name: format!("{id}.txt"),
            text,
            spans,
            labels,
        }
    }

    pub(crate) fn corpus() -> Vec<EvalDocument> {
        (0..8)
            .map(|i| {
                let surv = if i % 2 == 0 {
                    (
                        "Obligations survive termination of this Agreement.",
                        Some((0, DocLabel::Entailed)),
                    )
                } else {
                    (
                        "No obligation survives the termination of this Agreement.",
                        Some((0, DocLabel::Contradicted)),
                    )
                };
                doc(
                    &i.to_string(),
                    &[
                        ("This Agreement is made between the parties.", None),
                        surv,
                        ("Notices shall be sent by mail.", None),
                        (
                            "The Recipient may share information with its employees.",
                            Some((1, DocLabel::Entailed)),
                        ),
                    ],
                )
            })
            .collect()
    }

    #[test]
    fn terms_are_lower_cased_words_and_bigrams() {
        assert_eq!(
            terms_of("Shall NOT, disclose"),
            vec!["shall", "shall not", "not", "not disclose", "disclose"]
        );
        assert!(terms_of(" .; ").is_empty());
    }

    #[test]
    fn features_are_unit_length_tf_idf() {
        let c = TfidfClassifier::fit(
            &corpus(),
            1e-4,
            &TfidfOptions {
                steps: 1,
                ..Default::default()
            },
        )
        .unwrap();
        let v = c.vectorize("Obligations survive termination termination");
        let norm: f32 = v.iter().map(|&(_, x)| x * x).sum();
        assert!((norm - 1.0).abs() < 1e-5, "{norm}");
        // A repeated term weighs more than a single one of the same idf, by (1 + ln 2).
        let w = |t: &str| v.iter().find(|&&(i, _)| i == c.terms[t]).unwrap().1;
        let (idf_t, idf_s) = (
            c.idf[c.terms["termination"] as usize],
            c.idf[c.terms["survive"] as usize],
        );
        let ratio = (w("termination") / idf_t) / (w("survive") / idf_s);
        assert!((ratio - (1.0 + 2f32.ln())).abs() < 1e-4, "{ratio}");
        // Unknown words have no features.
        assert!(c.vectorize("zebra quokka").is_empty());
    }

    #[test]
    fn learns_the_span_labels_and_ranks_evidence_first() {
        let train = corpus();
        let c = TfidfClassifier::fit(&train, 1e-5, &TfidfOptions::default()).unwrap();
        let p = c.span_probs(&[
            "Obligations survive termination of this Agreement.",
            "No obligation survives the termination of this Agreement.",
            "Notices shall be sent by mail.",
            "The Recipient may share information with its employees.",
        ]);
        let argmax =
            |q: &[f32; LABELS]| (0..LABELS).max_by(|&a, &b| q[a].total_cmp(&q[b])).unwrap();
        assert_eq!(argmax(&p[0]), Label::Entails(0).index());
        assert_eq!(argmax(&p[1]), Label::Contradicts(0).index());
        assert_eq!(argmax(&p[2]), Label::None.index());
        assert_eq!(argmax(&p[3]), Label::Entails(1).index());
        for q in &p {
            assert!((q.iter().sum::<f32>() - 1.0).abs() < 1e-4);
        }
        // Training lowered the loss from the uniform start's ln 35.
        assert!(c.loss(&train) < 0.2, "{}", c.loss(&train));
        // A larger penalty fits less tightly.
        let loose = TfidfClassifier::fit(&train, 1e-1, &TfidfOptions::default()).unwrap();
        assert!(loose.loss(&train) > c.loss(&train));
    }

    #[test]
    fn mixing_is_a_renormalised_product_of_the_two() {
        let mut a = [0.01f32; LABELS];
        a[0] = 1.0 - 0.01 * (LABELS - 1) as f32;
        let mut b = [0.02f32; LABELS];
        b[3] = 1.0 - 0.02 * (LABELS - 1) as f32;
        let close = |x: &[f32; LABELS], y: &[f32; LABELS]| {
            x.iter().zip(y).all(|(p, q)| (p - q).abs() < 1e-5)
        };
        assert!(close(&mix(&[a], &[b], 0.0)[0], &a));
        assert!(close(&mix(&[a], &[b], 1.0)[0], &b));
        let m = mix(&[a], &[b], 0.5)[0];
        assert!((m.iter().sum::<f32>() - 1.0).abs() < 1e-5);
        // Labels 0 and 3 against a label both give little: sqrt(a b) ratios.
        let want = ((a[0] * b[0]) / (a[5] * b[5])).sqrt();
        assert!(
            (m[0] / m[5] - want).abs() / want < 1e-4,
            "{} vs {want}",
            m[0] / m[5]
        );
    }

    #[test]
    fn the_weight_follows_the_better_expert_on_validation() {
        // Targets: span i has label i % 3. The "model" knows, the "classifier" is uniform.
        let ys: Vec<Vec<(usize, f32)>> = (0..30).map(|i| vec![(i % 3, 1.0)]).collect();
        let sharp: Vec<[f32; LABELS]> = (0..30)
            .map(|i| {
                let mut p = [0.1 / (LABELS - 1) as f32; LABELS];
                p[i % 3] = 0.9;
                p
            })
            .collect();
        let flat = vec![[1.0 / LABELS as f32; LABELS]; 30];
        let (w, losses) = choose_weight(&sharp, &flat, &ys);
        assert_eq!(w, 0.0);
        assert_eq!(losses.len(), WEIGHT_GRID.len());
        let (w, _) = choose_weight(&flat, &sharp, &ys);
        assert_eq!(w, 1.0);
        // Two half-right experts that err on different spans: the mixture beats both.
        let half = |k: usize| -> Vec<[f32; LABELS]> {
            (0..30)
                .map(|i| {
                    let mut p = [0.2 / (LABELS - 1) as f32; LABELS];
                    p[if i % 2 == k { i % 3 } else { (i + 1) % 3 }] += 0.4;
                    p[i % 3] += 0.4;
                    p
                })
                .collect()
        };
        let (w, losses) = choose_weight(&half(0), &half(1), &ys);
        assert!(w > 0.0 && w < 1.0, "{w} {losses:?}");
    }

    #[test]
    fn saves_and_loads_the_same_classifier() {
        let c = TfidfClassifier::fit(&corpus(), 1e-4, &TfidfOptions::default()).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join(TFIDF_FILE);
        c.save(&p).unwrap();
        let back = TfidfClassifier::load(&p).unwrap();
        assert_eq!(back.vocabulary(), c.vocabulary());
        assert_eq!(back.l2, c.l2);
        let texts = [
            "Obligations survive termination.",
            "Notices by mail.",
            "unknown words",
        ];
        assert_eq!(back.span_probs(&texts), c.span_probs(&texts));
        // A foreign or damaged file is an error naming it, not a panic.
        std::fs::write(&p, b"not safetensors").unwrap();
        let e = TfidfClassifier::load(&p).unwrap_err().to_string();
        assert!(e.contains(TFIDF_FILE), "{e}");
        let other = dir.path().join("other.safetensors");
        let data = vec![0u8; 8];
        let view =
            safetensors::tensor::TensorView::new(safetensors::Dtype::F32, vec![2], &data).unwrap();
        safetensors::serialize_to_file(vec![("x", view)], None, &other).unwrap();
        let e = TfidfClassifier::load(&other).unwrap_err().to_string();
        assert!(e.contains("not a hone TF-IDF classifier"), "{e}");
    }

    #[test]
    fn no_spans_is_an_error() {
        let empty = EvalDocument {
            id: "0".into(),
            file_name: "0".into(),
            text: String::new(),
            spans: Vec::new(),
            labels: BTreeMap::new(),
        };
        assert!(TfidfClassifier::fit(&[empty], 1e-4, &TfidfOptions::default()).is_err());
    }
}
