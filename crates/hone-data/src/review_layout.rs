//! How a contract is laid out for the model when it is reviewed, one path shared by training
//! (`hone train` with `data.format = "review"`) and inference (`hone review`).
//!
//! A document is a list of spans (sentences and list items, character offsets). The model
//! reads a short instruction prefix, then the spans one per line; the line break that ends
//! each span is that span's *label slot*: the model's next-token distribution there, over 35
//! label tokens, says which check the span is evidence for and how:
//!
//! - `" -"`: evidence for no check (most spans);
//! - `" A"` .. `" Q"`: entails check 1 .. 17 (in [`nda::CHECKS`] order);
//! - `" a"` .. `" q"`: contradicts check 1 .. 17.
//!
//! A span that is evidence for several checks is trained towards all of its labels at once
//! (equal probability on each). The label is never fed back as input, so a whole document is
//! one forward pass: nothing is generated.
//!
//! Long documents are cut into windows of at most `max_window` tokens, each starting with a
//! few spans of the previous window as context (their slots are not scored again). The
//! prefix is the same for every window of every document, so inference computes it once and
//! forks its KV cache into each window.

use crate::nda::{self, CHECKS};
use crate::{Error, Result};
use hone_model::tokenizer::Tokenizer;

/// Number of label tokens: none, then 17 entailed, then 17 contradicted.
pub const LABELS: usize = 1 + 2 * CHECKS.len();

/// The label tokens' text, in label order (index 0 = none, 1 + i = entails check i,
/// 18 + i = contradicts check i).
pub fn label_texts() -> Vec<String> {
    let mut v = vec![" -".to_string()];
    for i in 0..CHECKS.len() {
        v.push(format!(" {}", (b'A' + i as u8) as char));
    }
    for i in 0..CHECKS.len() {
        v.push(format!(" {}", (b'a' + i as u8) as char));
    }
    v
}

/// A label: evidence for nothing, or for one check with a polarity.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Label {
    None,
    Entails(usize),
    Contradicts(usize),
}

impl Label {
    pub fn index(self) -> usize {
        match self {
            Label::None => 0,
            Label::Entails(c) => 1 + c,
            Label::Contradicts(c) => 1 + CHECKS.len() + c,
        }
    }
    pub fn from_index(i: usize) -> Option<Self> {
        let n = CHECKS.len();
        match i {
            0 => Some(Label::None),
            i if i <= n => Some(Label::Entails(i - 1)),
            i if i < LABELS => Some(Label::Contradicts(i - 1 - n)),
            _ => None,
        }
    }
}

/// The token ids the layout uses, resolved against one tokenizer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Vocab {
    /// Label tokens in label order ([`LABELS`] of them).
    pub labels: Vec<u32>,
    /// The slot token (a line break).
    pub slot: u32,
    /// The instruction prefix.
    pub prefix: Vec<u32>,
    /// Ids the tokenizer adds on its own (BOS / EOS), stripped from each span.
    added: Vec<u32>,
}

/// The instruction every document starts with.
pub fn prefix_text() -> String {
    let mut s = String::from(
        "Review of a non-disclosure agreement, one span per line. After each span: - (no check), \
         or the code of the check it is evidence for, upper case if the span entails it, lower \
         case if it contradicts it. Checks:",
    );
    for (i, c) in CHECKS.iter().enumerate() {
        s.push_str(&format!(" {} {};", (b'A' + i as u8) as char, c.name));
    }
    s.push_str("\n\n");
    s
}

fn single(tok: &Tokenizer, text: &str) -> Result<u32> {
    let ids = strip(tok.encode(text, false)?, &added_ids(tok));
    match ids[..] {
        [id] => Ok(id),
        _ => Err(Error::Invalid(format!(
            "the model's tokenizer splits the review token {text:?} into {} tokens; review \
             needs a tokenizer that keeps it whole (llama-family BPE vocabularies do)",
            ids.len()
        ))),
    }
}

fn added_ids(tok: &Tokenizer) -> Vec<u32> {
    let mut v = Vec::new();
    if tok.adds_bos() {
        v.extend(tok.bos_id());
    }
    v.extend(tok.eos_id());
    v
}

fn strip(mut ids: Vec<u32>, added: &[u32]) -> Vec<u32> {
    if ids.first().is_some_and(|t| added.contains(t)) {
        ids.remove(0);
    }
    if ids.last().is_some_and(|t| added.contains(t)) && !ids.is_empty() {
        // Only an EOS the tokenizer itself appended; a literal one in the text is not parsed.
        ids.pop();
    }
    ids
}

impl Vocab {
    pub fn new(tok: &Tokenizer) -> Result<Self> {
        let labels = label_texts()
            .iter()
            .map(|t| single(tok, t))
            .collect::<Result<Vec<_>>>()?;
        let slot = single(tok, "\n")?;
        let added = added_ids(tok);
        let mut prefix = tok.encode(&prefix_text(), false)?;
        if prefix.last().is_some_and(|t| added.contains(t)) {
            prefix.pop();
        }
        Ok(Self {
            labels,
            slot,
            prefix,
            added,
        })
    }
}

/// The prefix with demonstrations (a base model's few-shot prompt): the instruction, then
/// each example span on its line followed by its label on the next, then the document.
pub fn fewshot_prefix(
    vocab: &Vocab,
    tok: &Tokenizer,
    demos: &[(String, Label)],
) -> Result<Vec<u32>> {
    let mut ids = vocab.prefix.clone();
    ids.extend(strip(tok.encode("Examples:\n", false)?, &vocab.added));
    for (text, label) in demos {
        let clean = text.trim().replace(['\n', '\r'], " ");
        ids.extend(strip(tok.encode(&clean, false)?, &vocab.added));
        ids.push(vocab.slot);
        ids.push(vocab.labels[label.index()]);
        ids.push(vocab.slot);
    }
    ids.extend(strip(
        tok.encode("\nThe agreement:\n", false)?,
        &vocab.added,
    ));
    Ok(ids)
}

/// One window of a document (without the prefix).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Window {
    pub ids: Vec<u32>,
    /// (position in `ids` of a slot, index of its span in the document). Context spans
    /// repeated from the previous window have no entry.
    pub slots: Vec<(usize, usize)>,
}

/// A document ready for the model.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layout {
    pub windows: Vec<Window>,
    /// Tokens in all windows (prefix not counted).
    pub tokens: usize,
    /// Spans whose text was cut to fit a window.
    pub truncated_spans: usize,
}

/// Layout options.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Options {
    /// Most tokens in one window, slots included, prefix not included.
    pub max_window: usize,
    /// Tokens of preceding spans repeated at the start of a window as context.
    pub context: usize,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            max_window: 1024,
            context: 128,
        }
    }
}

/// Lays out the spans (their texts, in document order) into windows.
pub fn layout(vocab: &Vocab, tok: &Tokenizer, spans: &[&str], opt: Options) -> Result<Layout> {
    if opt.max_window < 16 {
        return Err(Error::Invalid(format!(
            "a review window of {} tokens is too small (at least 16)",
            opt.max_window
        )));
    }
    let mut truncated = 0;
    let mut toks: Vec<Vec<u32>> = Vec::with_capacity(spans.len());
    for s in spans {
        // A span holds no line break by definition; one in the input (an imported span that
        // has one) would look like a slot, so it becomes a space.
        let clean = s.trim().replace(['\n', '\r'], " ");
        let mut ids = strip(tok.encode(&clean, false)?, &vocab.added);
        ids.retain(|&t| t != vocab.slot);
        let cap = opt.max_window - 1;
        if ids.len() > cap {
            ids.truncate(cap);
            truncated += 1;
        }
        ids.push(vocab.slot);
        toks.push(ids);
    }
    let mut windows = Vec::new();
    let mut i = 0;
    while i < toks.len() {
        let mut w = Window {
            ids: Vec::new(),
            slots: Vec::new(),
        };
        // Context: the spans just before `i` that fit in `context` tokens (and leave room).
        let mut c = i;
        let mut ctx_len = 0;
        while c > 0 && ctx_len + toks[c - 1].len() <= opt.context.min(opt.max_window / 4) {
            ctx_len += toks[c - 1].len();
            c -= 1;
        }
        for t in &toks[c..i] {
            w.ids.extend_from_slice(t);
        }
        while i < toks.len()
            && (w.slots.is_empty() || w.ids.len() + toks[i].len() <= opt.max_window)
        {
            if w.ids.len() + toks[i].len() > opt.max_window {
                // The first span does not fit after the context: drop the context.
                w.ids.clear();
            }
            w.ids.extend_from_slice(&toks[i]);
            w.slots.push((w.ids.len() - 1, i));
            i += 1;
        }
        windows.push(w);
    }
    let tokens = windows.iter().map(|w| w.ids.len()).sum();
    Ok(Layout {
        windows,
        tokens,
        truncated_spans: truncated,
    })
}

/// The gold labels of each span of a document: `labels[check id]` = (document label, evidence
/// span indices), as ContractNLI annotates them. A span that is evidence for an entailed check
/// gets [`Label::Entails`], for a contradicted one [`Label::Contradicts`]; a span with no
/// evidence role gets [`Label::None`] alone.
pub fn span_labels(
    n_spans: usize,
    labels: &std::collections::BTreeMap<String, crate::contractnli::GoldLabel>,
) -> Vec<Vec<Label>> {
    let mut out = vec![Vec::new(); n_spans];
    for (id, g) in labels {
        let Some(c) = nda::check_index(id) else {
            continue;
        };
        let l = match g.label {
            nda::DocLabel::Entailed => Label::Entails(c),
            nda::DocLabel::Contradicted => Label::Contradicts(c),
            nda::DocLabel::NotMentioned => continue,
        };
        for &s in &g.spans {
            if s < n_spans && !out[s].contains(&l) {
                out[s].push(l);
            }
        }
    }
    for v in out.iter_mut() {
        if v.is_empty() {
            v.push(Label::None);
        }
        v.sort_by_key(|l| l.index());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_indices_round_trip_and_texts_are_distinct() {
        for i in 0..LABELS {
            assert_eq!(Label::from_index(i).unwrap().index(), i);
        }
        assert_eq!(Label::from_index(LABELS), None);
        let t = label_texts();
        let mut u = t.clone();
        u.sort();
        u.dedup();
        assert_eq!(u.len(), LABELS);
        assert_eq!(t[Label::Entails(16).index()], " Q");
        assert_eq!(t[Label::Contradicts(0).index()], " a");
    }
}
