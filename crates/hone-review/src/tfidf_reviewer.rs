//! The TF-IDF baseline as a review engine (`hone review --tfidf-from TRAIN`): the classifier
//! of [`crate::tfidf`] with decision thresholds tuned on validation documents
//! ([`crate::calibrate`]), deciding the checks through the same aggregate as an adapter
//! ([`crate::engine::assemble`]).

use hone_data::contractnli::EvalDocument;

use crate::aggregate::Calibration;
use crate::calibrate::{tune, Scored};
use crate::engine::{assemble, ReviewEngine, SpanProbs};
use crate::input::InputDoc;
use crate::playbook::Playbook;
use crate::tfidf::{TfidfClassifier, TfidfOptions, L2_GRID};
use crate::types::DocReview;
use crate::Result;

/// The baseline as a review engine: the classifier and its tuned thresholds.
#[derive(Clone, Debug)]
pub struct TfidfReviewer {
    pub classifier: TfidfClassifier,
    pub calibration: Calibration,
    /// Evidence spans listed per check (0: every span with a score).
    pub max_evidence: usize,
    /// How it was trained, for people.
    pub note: String,
}

impl TfidfReviewer {
    /// Trains on `train`; with `valid`, picks the L2 penalty by validation loss and tunes
    /// the decision thresholds there as `hone train` does for an adapter.
    pub fn train(
        train: &[EvalDocument],
        valid: Option<&[EvalDocument]>,
        opt: &TfidfOptions,
    ) -> Result<Self> {
        let valid = valid.filter(|v| !v.is_empty());
        let (classifier, calibration, how) = match valid {
            None => (
                TfidfClassifier::fit(train, L2_GRID[0], opt)?,
                Calibration::default(),
                "thresholds left at 1/2 (no validation documents)".to_string(),
            ),
            Some(v) => {
                let (c, loss) = TfidfClassifier::fit_tuned(train, v, opt)?;
                let loss = loss.unwrap_or(0.0);
                let scored: Vec<Scored> = v
                    .iter()
                    .map(|d| Scored {
                        doc: d.clone(),
                        probs: c.span_probs(&hone_data::spans::pair_texts(&d.text, &d.spans)),
                    })
                    .collect();
                let (cal, _) = tune(&scored)?;
                let how = format!(
                    "L2 {} by validation loss {loss:.4}; thresholds tuned on {} validation \
                     documents (mentioned at {:.2}, entailment at {:.2})",
                    c.l2,
                    v.len(),
                    cal.mentioned,
                    cal.entailment
                );
                (c, cal, how)
            }
        };
        let note = format!(
            "TF-IDF + logistic regression on {} training documents, {} terms; {how}",
            train.len(),
            classifier.vocabulary()
        );
        Ok(Self {
            classifier,
            calibration,
            max_evidence: crate::aggregate::MAX_EVIDENCE,
            note,
        })
    }
}

impl ReviewEngine for TfidfReviewer {
    fn review(&self, doc: &InputDoc, playbook: Option<&Playbook>) -> Result<DocReview> {
        assemble(
            doc,
            playbook,
            &self.calibration,
            self.max_evidence,
            |texts| {
                Ok(SpanProbs {
                    probs: self.classifier.span_probs(texts),
                    windows: 0,
                    tokens: 0,
                    truncated_spans: 0,
                })
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tfidf::tests::corpus;
    use hone_data::nda::CHECKS;

    #[test]
    fn reviewer_decides_checks_through_the_shared_aggregate() {
        let train = corpus();
        let r =
            TfidfReviewer::train(&train[..6], Some(&train[6..]), &TfidfOptions::default()).unwrap();
        assert!(L2_GRID.contains(&r.classifier.l2));
        assert!(r.note.contains("6 training documents"), "{}", r.note);
        let d = &train[7]; // odd: survival contradicted
        let input = InputDoc {
            doc_id: d.id.clone(),
            source: "t".into(),
            text: d.text.clone(),
            spans: d.spans.clone(),
            warnings: Vec::new(),
            read_ms: 0.0,
        };
        let out = r.review(&input, None).unwrap();
        let survival = &out.checks[CHECKS[0].id];
        assert_eq!(survival.label, "Contradiction");
        assert_eq!(survival.evidence[0].start, d.spans[1][0]);
        assert_eq!(out.checks[CHECKS[1].id].label, "Entailment");
        assert_eq!(out.checks[CHECKS[5].id].label, "NotMentioned");
    }
}
