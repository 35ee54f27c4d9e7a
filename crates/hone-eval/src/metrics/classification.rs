//! Single-label and multi-label classification metrics.
//!
//! # Conventions
//!
//! These follow scikit-learn's `precision_recall_fscore_support` with its default label set (the
//! labels that occur in the gold values or in the predictions) and `zero_division=0`:
//!
//! - A class is *active* when it has gold support or was predicted at least once. For an active
//!   class, precision = tp / (tp + fp), recall = tp / (tp + fn) and F1 = 2tp / (2tp + fp + fn),
//!   each 0.0 when its denominator is zero (a gold class never predicted has precision 0.0; a
//!   predicted class with no gold support has recall 0.0).
//! - A class that is neither in the gold values nor predicted has precision, recall and F1
//!   `None` (JSON `null`) and is left out of the macro averages.
//! - Macro averages are unweighted means over the active classes. Micro averages pool tp, fp
//!   and fn over all classes.
//! - An unparseable answer (`None`, or a label outside the allowed set) is never dropped: it is
//!   counted in `unparseable`, wrong for accuracy, a false negative for the gold class and a
//!   false positive for no class. It is not a class, so it takes no part in the macro averages;
//!   the confusion matrix has a separate column for it. With unparseable answers micro precision
//!   and micro recall therefore differ; micro recall equals accuracy.

use std::collections::{BTreeSet, HashMap};

use serde::{Deserialize, Serialize};

use super::{check_lengths, mean_defined, ratio};
use crate::{Error, Result};

/// Counts and scores for one class.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClassMetrics {
    /// The class.
    pub label: String,
    /// Gold examples of this class.
    pub support: usize,
    /// Predictions of this class.
    pub predicted: usize,
    /// True positives.
    pub tp: usize,
    /// False positives.
    pub fp: usize,
    /// False negatives (unparseable answers for this gold class included).
    #[serde(rename = "fn")]
    pub fn_: usize,
    /// `None` when the class is neither in the gold values nor predicted.
    pub precision: Option<f64>,
    /// `None` when the class is neither in the gold values nor predicted.
    pub recall: Option<f64>,
    /// `None` when the class is neither in the gold values nor predicted.
    pub f1: Option<f64>,
}

impl ClassMetrics {
    fn new(label: &str, tp: usize, fp: usize, fn_: usize) -> Self {
        let active = tp + fp + fn_ > 0;
        let score = |num: usize, den: usize| active.then(|| ratio(num, den).unwrap_or(0.0));
        Self {
            label: label.to_string(),
            support: tp + fn_,
            predicted: tp + fp,
            tp,
            fp,
            fn_,
            precision: score(tp, tp + fp),
            recall: score(tp, tp + fn_),
            f1: score(2 * tp, 2 * tp + fp + fn_),
        }
    }
}

/// Precision, recall and F1 averaged one way.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Averages {
    /// Averaged precision.
    pub precision: Option<f64>,
    /// Averaged recall.
    pub recall: Option<f64>,
    /// Averaged F1.
    pub f1: Option<f64>,
}

impl Averages {
    fn micro(classes: &[ClassMetrics]) -> Self {
        let tp: usize = classes.iter().map(|c| c.tp).sum();
        let fp: usize = classes.iter().map(|c| c.fp).sum();
        let fn_: usize = classes.iter().map(|c| c.fn_).sum();
        let m = ClassMetrics::new("", tp, fp, fn_);
        Self {
            precision: m.precision,
            recall: m.recall,
            f1: m.f1,
        }
    }

    fn macro_(classes: &[ClassMetrics]) -> Self {
        Self {
            precision: mean_defined(classes.iter().map(|c| c.precision)),
            recall: mean_defined(classes.iter().map(|c| c.recall)),
            f1: mean_defined(classes.iter().map(|c| c.f1)),
        }
    }
}

/// Gold labels (rows) against predicted labels (columns), in the order of `labels`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ConfusionMatrix {
    /// The allowed labels, in the order of rows and columns.
    pub labels: Vec<String>,
    /// `matrix[gold][predicted]`.
    pub matrix: Vec<Vec<usize>>,
    /// `unparseable[gold]`: answers for gold class `gold` that could not be parsed.
    pub unparseable: Vec<usize>,
}

/// The result of [`classification`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClassificationReport {
    /// Examples scored.
    pub total: usize,
    /// Examples whose parsed answer equals the gold label.
    pub correct: usize,
    /// Answers that could not be parsed (counted as wrong).
    pub unparseable: usize,
    /// `correct / total`, unparseable answers included in `total`.
    pub accuracy: f64,
    /// One entry per allowed label, in the order given.
    pub per_class: Vec<ClassMetrics>,
    /// Pooled over classes.
    pub micro: Averages,
    /// Unweighted mean over the active classes (serialized as `macro`).
    #[serde(rename = "macro")]
    pub macro_: Averages,
    /// Gold × predicted counts.
    pub confusion: ConfusionMatrix,
}

fn label_index(labels: &[String]) -> Result<HashMap<&str, usize>> {
    if labels.is_empty() {
        return Err(Error::Invalid("no labels given".into()));
    }
    let mut index = HashMap::new();
    for (i, l) in labels.iter().enumerate() {
        if index.insert(l.as_str(), i).is_some() {
            return Err(Error::Invalid(format!("label `{l}` is listed twice")));
        }
    }
    Ok(index)
}

fn gold_index(index: &HashMap<&str, usize>, label: &str, example: usize) -> Result<usize> {
    index.get(label).copied().ok_or_else(|| {
        Error::Invalid(format!(
            "example {example}: gold label `{label}` is not one of the allowed labels"
        ))
    })
}

/// Single-label classification metrics.
///
/// `labels` is the allowed label set (order kept in the report); `gold[i]` must be one of them;
/// `predicted[i]` is `None` for an answer that could not be parsed, and a `Some` outside the
/// allowed set is counted as unparseable too. Errors on empty input, on lists of different
/// lengths, on an empty or duplicated label set and on a gold label outside the set. See the
/// module documentation for the conventions.
pub fn classification(
    labels: &[String],
    gold: &[String],
    predicted: &[Option<String>],
) -> Result<ClassificationReport> {
    check_lengths("classification", gold.len(), predicted.len())?;
    let index = label_index(labels)?;
    let k = labels.len();
    let mut matrix = vec![vec![0usize; k]; k];
    let mut unparseable = vec![0usize; k];
    for (i, (g, p)) in gold.iter().zip(predicted).enumerate() {
        let gi = gold_index(&index, g, i)?;
        match p.as_deref().and_then(|p| index.get(p)) {
            Some(&pi) => matrix[gi][pi] += 1,
            None => unparseable[gi] += 1,
        }
    }
    let per_class: Vec<ClassMetrics> = (0..k)
        .map(|c| {
            let tp = matrix[c][c];
            let fp = (0..k).filter(|&g| g != c).map(|g| matrix[g][c]).sum();
            let fn_ = matrix[c].iter().sum::<usize>() - tp + unparseable[c];
            ClassMetrics::new(&labels[c], tp, fp, fn_)
        })
        .collect();
    let correct: usize = (0..k).map(|c| matrix[c][c]).sum();
    let total = gold.len();
    Ok(ClassificationReport {
        total,
        correct,
        unparseable: unparseable.iter().sum(),
        accuracy: correct as f64 / total as f64,
        micro: Averages::micro(&per_class),
        macro_: Averages::macro_(&per_class),
        per_class,
        confusion: ConfusionMatrix {
            labels: labels.to_vec(),
            matrix,
            unparseable,
        },
    })
}

/// The result of [`multilabel`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MultiLabelReport {
    /// Examples scored.
    pub total: usize,
    /// Answers that could not be parsed.
    pub unparseable: usize,
    /// Examples whose predicted set equals the gold set exactly (unparseable answers never do).
    pub exact_matches: usize,
    /// `exact_matches / total`.
    pub exact_set_accuracy: f64,
    /// Fraction of (example, label) decisions that are wrong, over `total × labels`.
    pub hamming_loss: f64,
    /// One entry per allowed label, in the order given.
    pub per_label: Vec<ClassMetrics>,
    /// Pooled over labels.
    pub micro: Averages,
    /// Unweighted mean over the active labels (serialized as `macro`).
    #[serde(rename = "macro")]
    pub macro_: Averages,
}

/// Multi-label classification metrics: per-label precision / recall / F1, micro and macro
/// averages over labels, exact-set accuracy and Hamming loss.
///
/// `gold[i]` and `predicted[i]` are label sets (duplicates are ignored). `predicted[i]` is `None`
/// when the answer could not be parsed, and a set holding a label outside `labels` counts as
/// unparseable too. An unparseable answer is wrong for exact-set accuracy (even when the gold set
/// is empty) and otherwise scored as the empty set: a false negative for every gold label, so
/// also in the Hamming loss. Per-label conventions are those of the module documentation.
pub fn multilabel(
    labels: &[String],
    gold: &[Vec<String>],
    predicted: &[Option<Vec<String>>],
) -> Result<MultiLabelReport> {
    check_lengths("multi-label classification", gold.len(), predicted.len())?;
    let index = label_index(labels)?;
    let k = labels.len();
    let (mut tp, mut fp, mut fn_) = (vec![0usize; k], vec![0usize; k], vec![0usize; k]);
    let (mut unparseable, mut exact, mut wrong_slots) = (0usize, 0usize, 0usize);
    for (i, (g, p)) in gold.iter().zip(predicted).enumerate() {
        let gs: BTreeSet<usize> = g
            .iter()
            .map(|l| gold_index(&index, l, i))
            .collect::<Result<_>>()?;
        let ps: Option<BTreeSet<usize>> = p.as_ref().and_then(|p| {
            p.iter()
                .map(|l| index.get(l.as_str()).copied())
                .collect::<Option<_>>()
        });
        let parsed = ps.is_some();
        let ps = ps.unwrap_or_default();
        if !parsed {
            unparseable += 1;
        } else if ps == gs {
            exact += 1;
        }
        for c in 0..k {
            match (gs.contains(&c), ps.contains(&c)) {
                (true, true) => tp[c] += 1,
                (false, true) => fp[c] += 1,
                (true, false) => fn_[c] += 1,
                (false, false) => {}
            }
        }
        wrong_slots += gs.symmetric_difference(&ps).count();
    }
    let per_label: Vec<ClassMetrics> = (0..k)
        .map(|c| ClassMetrics::new(&labels[c], tp[c], fp[c], fn_[c]))
        .collect();
    let total = gold.len();
    Ok(MultiLabelReport {
        total,
        unparseable,
        exact_matches: exact,
        exact_set_accuracy: exact as f64 / total as f64,
        hamming_loss: wrong_slots as f64 / (total * k) as f64,
        micro: Averages::micro(&per_label),
        macro_: Averages::macro_(&per_label),
        per_label,
    })
}
