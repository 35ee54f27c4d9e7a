//! SentencePiece BPE as llama.cpp's `llm_tokenizer_spm` runs it: the text (spaces already
//! `▁`) is cut into characters; the adjacent pair whose concatenation is the highest-scoring
//! token merges first (the leftmost among equal scores), until no pair is a token; a leftover
//! character that is not a token becomes its UTF-8 bytes as `<0xXX>` tokens.
//!
//! It is a `tokenizers` [`Model`], so the `tokenizers` pipeline around it (added tokens,
//! normalizer, offsets into the original text) is the one byte-level vocabularies use. Building
//! it only indexes the vocabulary: no merge table (Gemma's 262,144 tokens imply 515k merges,
//! which a BPE model would have to build and hash; [`SpmModel::to_bpe`] does so only to write a
//! `tokenizer.json`).

use std::collections::{BinaryHeap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokenizers::models::bpe::{BpeTrainer, BPE};
use tokenizers::{Model, Token};

use super::TokenMap;

/// The vocabulary, shared by the clones of a model.
struct SpmVocab {
    /// Tokens by id, in the encoder's spelling.
    pieces: Vec<String>,
    /// Encoder spelling -> id (a token spelled twice: the later id).
    ids: TokenMap,
    scores: Vec<f32>,
    /// The `<0xXX>` token of each byte, where the vocabulary has it.
    byte_ids: [Option<u32>; 256],
    unk: Option<u32>,
}

/// A SentencePiece BPE model (cheap to clone).
#[derive(Clone)]
pub(super) struct SpmModel(Arc<SpmVocab>);

impl std::fmt::Debug for SpmModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpmModel")
            .field("vocab_size", &self.0.pieces.len())
            .finish()
    }
}

/// A candidate merge: symbols `left` and `right`, whose concatenation (`size` bytes) is a
/// token scoring `score`.
struct Bigram {
    score: f32,
    left: usize,
    right: usize,
    size: usize,
}

impl PartialEq for Bigram {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == std::cmp::Ordering::Equal
    }
}
impl Eq for Bigram {}
impl PartialOrd for Bigram {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Bigram {
    /// The heap's top: the highest score, then the leftmost (llama.cpp's comparator).
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.score
            .total_cmp(&other.score)
            .then_with(|| other.left.cmp(&self.left))
    }
}

/// A symbol: a byte range of the text, linked to its neighbours (`usize::MAX`: none). Merged
/// away: `start == end`.
#[derive(Clone, Copy)]
struct Symbol {
    start: usize,
    end: usize,
    prev: usize,
    next: usize,
}

const NONE: usize = usize::MAX;

impl SpmModel {
    /// `pieces[id]` in the encoder's spelling (`▁` for spaces), `scores[id]`, the unknown
    /// token's id.
    pub(super) fn new(pieces: Vec<String>, scores: Vec<f32>, unk: Option<u32>) -> Self {
        let mut ids = TokenMap::with_capacity(pieces.len());
        for (i, p) in pieces.iter().enumerate() {
            ids.insert(p.clone(), i as u32);
        }
        let mut byte_ids = [None; 256];
        for (b, slot) in byte_ids.iter_mut().enumerate() {
            *slot = ids.get(format!("<0x{b:02X}>").as_str()).copied();
        }
        Self(Arc::new(SpmVocab {
            pieces,
            ids,
            scores,
            byte_ids,
            unk,
        }))
    }

    /// The token ids of `text` (already normalized), as `(id, byte range in text)`.
    fn encode(&self, text: &str) -> Vec<(u32, usize, usize)> {
        let v = &*self.0;
        let mut syms: Vec<Symbol> = Vec::with_capacity(text.len());
        for (start, c) in text.char_indices() {
            let i = syms.len();
            syms.push(Symbol {
                start,
                end: start + c.len_utf8(),
                prev: if i == 0 { NONE } else { i - 1 },
                next: i + 1,
            });
        }
        if let Some(last) = syms.last_mut() {
            last.next = NONE;
        }

        let mut heap = BinaryHeap::with_capacity(syms.len());
        let try_add =
            |heap: &mut BinaryHeap<Bigram>, syms: &[Symbol], left: usize, right: usize| {
                if left == NONE || right == NONE {
                    return;
                }
                let (start, end) = (syms[left].start, syms[right].end);
                if let Some(&id) = v.ids.get(&text[start..end]) {
                    heap.push(Bigram {
                        score: v.scores[id as usize],
                        left,
                        right,
                        size: end - start,
                    });
                }
            };
        for i in 1..syms.len() {
            try_add(&mut heap, &syms, i - 1, i);
        }
        while let Some(b) = heap.pop() {
            let (l, r) = (syms[b.left], syms[b.right]);
            // Stale: one side was merged away or grew since.
            if l.start == l.end
                || r.start == r.end
                || (l.end - l.start) + (r.end - r.start) != b.size
            {
                continue;
            }
            syms[b.left].end = r.end;
            syms[b.left].next = r.next;
            syms[b.right].end = syms[b.right].start;
            if r.next != NONE {
                syms[r.next].prev = b.left;
            }
            try_add(&mut heap, &syms, l.prev, b.left);
            try_add(&mut heap, &syms, b.left, r.next);
        }

        let mut out = Vec::with_capacity(syms.len());
        let mut i = if syms.is_empty() { NONE } else { 0 };
        while i != NONE {
            let s = syms[i];
            let piece = &text[s.start..s.end];
            if let Some(&id) = v.ids.get(piece) {
                out.push((id, s.start, s.end));
            } else {
                // Only a single character can be missing (merges make tokens): its bytes.
                let bytes: Option<Vec<u32>> =
                    piece.bytes().map(|b| v.byte_ids[b as usize]).collect();
                match (bytes, v.unk) {
                    (Some(bytes), _) => out.extend(
                        bytes
                            .into_iter()
                            .enumerate()
                            .map(|(k, id)| (id, s.start + k, s.start + k + 1)),
                    ),
                    (None, Some(unk)) => out.push((unk, s.start, s.end)),
                    (None, None) => {}
                }
            }
            i = s.next;
        }
        out
    }

    /// The same tokenizer as a `tokenizers` BPE model with byte fallback: the merges of every
    /// token that splits into two tokens, ranked by the merged token's score (then id), which
    /// is what the score-greedy merging above amounts to (HF's conversion of SentencePiece
    /// vocabularies builds them so). For writing `tokenizer.json`.
    pub(super) fn to_bpe(&self) -> tokenizers::Result<BPE> {
        let v = &*self.0;
        let mut ranked: Vec<(f32, u32, u32)> = Vec::with_capacity(2 * v.pieces.len());
        for (id, t) in v.pieces.iter().enumerate() {
            if v.ids.get(t.as_str()) != Some(&(id as u32)) {
                continue; // a duplicate spelling: the later id is the token
            }
            for (k, _) in t.char_indices().skip(1) {
                if v.ids.contains_key(&t[..k]) && v.ids.contains_key(&t[k..]) {
                    ranked.push((v.scores[id], id as u32, k as u32));
                }
            }
        }
        ranked.sort_unstable_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)).then(b.2.cmp(&a.2)));
        let merges = ranked
            .iter()
            .map(|&(_, id, k)| {
                let t = &v.pieces[id as usize];
                (t[..k as usize].to_string(), t[k as usize..].to_string())
            })
            .collect();
        let mut bpe = BPE::builder()
            .vocab_and_merges(v.ids.clone(), merges)
            .byte_fallback(true)
            .fuse_unk(true);
        if let Some(u) = v.unk {
            bpe = bpe.unk_token(v.pieces[u as usize].clone());
        }
        bpe.build()
    }
}

impl Model for SpmModel {
    type Trainer = BpeTrainer;

    fn tokenize(&self, sequence: &str) -> tokenizers::Result<Vec<Token>> {
        Ok(self
            .encode(sequence)
            .into_iter()
            .map(|(id, a, b)| Token::new(id, self.0.pieces[id as usize].clone(), (a, b)))
            .collect())
    }

    fn token_to_id(&self, token: &str) -> Option<u32> {
        self.0.ids.get(token).copied()
    }

    fn id_to_token(&self, id: u32) -> Option<String> {
        self.0.pieces.get(id as usize).cloned()
    }

    fn get_vocab(&self) -> HashMap<String, u32> {
        self.0.ids.iter().map(|(k, v)| (k.clone(), *v)).collect()
    }

    fn get_vocab_size(&self) -> usize {
        self.0.pieces.len()
    }

    fn save(&self, _folder: &Path, _prefix: Option<&str>) -> tokenizers::Result<Vec<PathBuf>> {
        Err("a SentencePiece GGUF vocabulary is saved as tokenizer.json (Tokenizer::to_tokenizer_json)".into())
    }

    fn get_trainer(&self) -> BpeTrainer {
        BpeTrainer::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model(pieces: &[(&str, f32)]) -> SpmModel {
        let mut all: Vec<(String, f32)> = vec![("<unk>".into(), 0.0)];
        all.extend((0..=255u8).map(|b| (format!("<0x{b:02X}>"), 0.0)));
        all.extend(pieces.iter().map(|(p, s)| (p.to_string(), *s)));
        let (p, s) = all.into_iter().unzip();
        SpmModel::new(p, s, Some(0))
    }

    fn pieces(m: &SpmModel, text: &str) -> Vec<String> {
        m.encode(text)
            .into_iter()
            .map(|(id, _, _)| m.0.pieces[id as usize].clone())
            .collect()
    }

    #[test]
    fn greedy_by_score_then_leftmost() {
        let m = model(&[
            ("a", -1.0),
            ("b", -1.0),
            ("ab", -3.0),
            ("bb", -2.0),
            ("abb", -9.0),
        ]);
        // `bb` outscores `ab`; then `a` + `bb` makes `abb`.
        assert_eq!(pieces(&m, "abb"), ["abb"]);
        let m = model(&[("a", -1.0), ("b", -1.0), ("ab", -3.0), ("bb", -2.0)]);
        assert_eq!(pieces(&m, "abb"), ["a", "bb"]);
        assert_eq!(pieces(&m, "abbb"), ["a", "bb", "b"]);
        let m = model(&[("a", -1.0), ("aa", -1.0)]);
        assert_eq!(pieces(&m, "aaaaa"), ["aa", "aa", "a"]);
    }

    #[test]
    fn byte_fallback_and_unknown() {
        let m = model(&[("a", -1.0)]);
        assert_eq!(pieces(&m, "aé"), ["a", "<0xC3>", "<0xA9>"]);
        assert_eq!(
            m.encode("aé"),
            vec![
                (m.0.ids["a"], 0, 1),
                (m.0.ids["<0xC3>"], 1, 2),
                (m.0.ids["<0xA9>"], 2, 3)
            ]
        );
        let bare = SpmModel::new(vec!["<unk>".into(), "a".into()], vec![0.0, 0.0], Some(0));
        assert_eq!(bare.encode("aé"), vec![(1, 0, 1), (0, 1, 3)]);
        assert!(m.encode("").is_empty());
    }
}
