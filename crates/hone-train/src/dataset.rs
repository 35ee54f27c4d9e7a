//! Examples to training sequences: the chat template renders each conversation, the
//! template's own assistant spans pick the tokens that carry loss, and examples longer than
//! `max_seq_len` (the trainer passes the smaller of `optim.max_seq_len` and the model's
//! context) are skipped (never cut: a cut answer teaches the wrong thing) and counted.

use std::path::Path;

use hone_data::example::Example;
use hone_model::chat_template::ChatTemplate;
use hone_model::tokenizer::Tokenizer;

use crate::backprop::TrainSeq;
use crate::{Error, Result};

/// Tokenized examples of one file, and what was skipped.
#[derive(Debug, Default)]
pub struct Tokenized {
    pub seqs: Vec<TrainSeq>,
    /// (line, tokens) of examples longer than `max_seq_len`.
    pub too_long: Vec<(usize, usize)>,
}

/// Token ids of one conversation and, per token, whether it belongs to an assistant turn.
pub fn tokenize(
    tok: &Tokenizer,
    tpl: &ChatTemplate,
    ex: &Example,
) -> Result<(Vec<u32>, Vec<bool>)> {
    let (text, spans) = tpl.render_with_spans(&ex.messages)?;
    let (ids, offs) = tok.encode_with_offsets(&text, true)?;
    let mask = offs
        .iter()
        .map(|&(s, e)| e > s && spans.iter().any(|r| s < r.end && e > r.start))
        .collect();
    Ok((ids, mask))
}

/// Reads and tokenizes a JSONL file (instruction or chat format).
pub fn load(
    path: &Path,
    tok: &Tokenizer,
    tpl: &ChatTemplate,
    max_seq_len: usize,
) -> Result<Tokenized> {
    let rows = hone_data::jsonl::read_examples(path).map_err(|e| Error::Invalid(e.to_string()))?;
    if rows.is_empty() {
        return Err(Error::Data {
            path: path.to_path_buf(),
            line: 1,
            msg: "the file has no examples".into(),
        });
    }
    let mut out = Tokenized::default();
    for (line, ex) in rows {
        if !ex.messages.iter().any(|m| m.role == "assistant") {
            return Err(Error::Data {
                path: path.to_path_buf(),
                line,
                msg: "field `messages`: no assistant turn to learn from".into(),
            });
        }
        let (ids, mask) = tokenize(tok, tpl, &ex).map_err(|e| Error::Data {
            path: path.to_path_buf(),
            line,
            msg: e.to_string(),
        })?;
        if ids.len() > max_seq_len {
            out.too_long.push((line, ids.len()));
            continue;
        }
        let seq = TrainSeq::causal(ids, &mask);
        if seq.loss_tokens() == 0 {
            return Err(Error::Data {
                path: path.to_path_buf(),
                line,
                msg: "the answer is empty".into(),
            });
        }
        out.seqs.push(seq);
    }
    if out.seqs.is_empty() {
        return Err(Error::Data {
            path: path.to_path_buf(),
            line: 1,
            msg: format!(
                "every example is longer than {max_seq_len} tokens (optim.max_seq_len, or the \
                 model's context where that is smaller)"
            ),
        });
    }
    Ok(out)
}

/// Reads annotated documents (`documents.jsonl`) and lays each out for review training
/// ([`hone_data::review_layout`]): one sequence per window, the loss on every span's label
/// slot, a span that is evidence for several checks trained towards all of them.
pub fn load_review(path: &Path, tok: &Tokenizer, max_seq_len: usize) -> Result<Tokenized> {
    use hone_data::review_layout::{self as rl, Options};
    let docs =
        hone_data::contractnli::read_documents(path).map_err(|e| Error::Invalid(e.to_string()))?;
    if docs.is_empty() {
        return Err(Error::Data {
            path: path.to_path_buf(),
            line: 1,
            msg: "the file has no documents".into(),
        });
    }
    let vocab = rl::Vocab::new(tok).map_err(|e| Error::Invalid(e.to_string()))?;
    if max_seq_len < vocab.prefix.len() + 64 {
        return Err(Error::Invalid(format!(
            "optim.max_seq_len = {max_seq_len} leaves no room for a review window after the \
             {}-token instruction; use at least {}",
            vocab.prefix.len(),
            vocab.prefix.len() + 64
        )));
    }
    let opt = Options {
        max_window: max_seq_len - vocab.prefix.len(),
        ..Options::default()
    };
    let mut out = Tokenized::default();
    for (i, doc) in docs.iter().enumerate() {
        let line = i + 1;
        let offs = hone_data::spans::CharOffsets::new(&doc.text);
        let n_chars = offs.char_len();
        let mut texts = Vec::with_capacity(doc.spans.len());
        for (k, &[s, e]) in doc.spans.iter().enumerate() {
            if s > e || e > n_chars {
                return Err(Error::Data {
                    path: path.to_path_buf(),
                    line,
                    msg: format!(
                        "field `spans`: span {k} [{s}, {e}) is outside the text ({n_chars} characters)"
                    ),
                });
            }
            texts.push(offs.slice(&hone_data::spans::Span::new(s, e)));
        }
        let gold = rl::span_labels(doc.spans.len(), &doc.labels);
        let lay = rl::layout(&vocab, tok, &texts, opt).map_err(|e| Error::Data {
            path: path.to_path_buf(),
            line,
            msg: e.to_string(),
        })?;
        for w in lay.windows {
            let p = vocab.prefix.len();
            let mut ids = vocab.prefix.clone();
            ids.extend_from_slice(&w.ids);
            let mut targets = vec![None; ids.len()];
            let mut also = Vec::new();
            for &(pos, span) in &w.slots {
                let labels = &gold[span];
                targets[p + pos] = Some(vocab.labels[labels[0].index()]);
                for l in &labels[1..] {
                    also.push((p + pos, vocab.labels[l.index()]));
                }
            }
            out.seqs.push(TrainSeq { ids, targets, also });
        }
    }
    Ok(out)
}
