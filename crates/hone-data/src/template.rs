//! Templates: short prompts that are the same once one span of a few words is masked
//! ("Disclosure to the {auditors | lenders | insurers} is permitted."). Word shingles cannot
//! see them: one changed word in a ten-word prompt removes three of its eight 3-shingles.
//!
//! Every prompt of [`MIN_WORDS`]..=[`MAX_WORDS`] words gets one key per masked span (each
//! start, spans of 1..=[`MAX_SPAN`] words, at most a third of the prompt): the hash of the
//! words before the span, a mask, and the words after. Prompts sharing a key are one slot
//! apart; chains of them (a second slot varied elsewhere) join the same cluster. Words are
//! compared lowercased, on their letters and digits, so punctuation and case do not matter.

use crate::hash::Hasher64;

/// Shorter prompts have too little fixed text left around a slot to call a template.
pub const MIN_WORDS: usize = 4;
/// Longer prompts are compared by their shingles (a slot is a small part of them).
pub const MAX_WORDS: usize = 48;
/// The longest masked span, in words.
pub const MAX_SPAN: usize = 3;

/// A prompt's words as compared (lowercased letters and digits), paired with the original.
pub fn words(text: &str) -> Vec<(String, &str)> {
    text.split_whitespace()
        .filter_map(|w| {
            let k: String = w
                .chars()
                .filter(|c| c.is_alphanumeric())
                .flat_map(char::to_lowercase)
                .collect();
            (!k.is_empty()).then_some((k, w))
        })
        .collect()
}

/// The masked-span keys of a prompt; none outside [`MIN_WORDS`]..=[`MAX_WORDS`] words.
pub fn masked_keys(text: &str) -> Vec<u64> {
    let w = words(text);
    let n = w.len();
    if !(MIN_WORDS..=MAX_WORDS).contains(&n) {
        return Vec::new();
    }
    let max_span = MAX_SPAN.min(n / 3).max(1);
    let mut keys = Vec::with_capacity(n * max_span);
    for len in 1..=max_span {
        for start in 0..=n - len {
            // The span's length is not in the key: a slot may hold one word or three.
            let mut h = Hasher64::new();
            for (k, _) in &w[..start] {
                h.write(k.as_bytes());
                h.sep();
            }
            h.write(b"\x00___\x00");
            for (k, _) in &w[start + len..] {
                h.write(k.as_bytes());
                h.sep();
            }
            keys.push(h.finish());
        }
    }
    keys
}

/// The template of a cluster as people read it: the words every member shares at the start
/// and at the end (as written in the first member), with `___` for what varies between them.
pub fn display(members: &[&str]) -> String {
    let ws: Vec<Vec<(String, &str)>> = members.iter().map(|t| words(t)).collect();
    let Some(first) = ws.first() else {
        return String::new();
    };
    let shortest = ws.iter().map(Vec::len).min().unwrap_or(0);
    let prefix = (0..shortest)
        .take_while(|&i| ws.iter().all(|w| w[i].0 == first[i].0))
        .count();
    let suffix = (0..shortest - prefix)
        .take_while(|&i| {
            ws.iter()
                .all(|w| w[w.len() - 1 - i].0 == first[first.len() - 1 - i].0)
        })
        .count();
    let mut out: Vec<&str> = first[..prefix].iter().map(|p| p.1).collect();
    if prefix + suffix < first.len() || ws.iter().any(|w| w.len() > prefix + suffix) {
        out.push("___");
    }
    out.extend(first[first.len() - suffix..].iter().map(|p| p.1));
    out.join(" ")
}

/// An order of a cluster's members that keeps it diverse when cut to its first `cap`: one
/// member of each answer in turn (file order within an answer), so every answer the
/// template has keeps examples.
pub fn diverse_order(members: &[u32], answer: impl Fn(u32) -> u64) -> Vec<u32> {
    let mut by_answer: Vec<(u64, Vec<u32>)> = Vec::new();
    for &m in members {
        let a = answer(m);
        match by_answer.iter_mut().find(|(k, _)| *k == a) {
            Some((_, v)) => v.push(m),
            None => by_answer.push((a, vec![m])),
        }
    }
    let mut out = Vec::with_capacity(members.len());
    let mut round = 0;
    while out.len() < members.len() {
        for (_, v) in &by_answer {
            if let Some(&m) = v.get(round) {
                out.push(m);
            }
        }
        round += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shared(a: &str, b: &str) -> bool {
        let kb = masked_keys(b);
        masked_keys(a).iter().any(|k| kb.contains(k))
    }

    #[test]
    fn prompts_one_slot_apart_share_a_key_whatever_the_slot() {
        let base = "Classify: Disclosure to the auditors is permitted.";
        for other in [
            "Classify: Disclosure to the lenders is permitted.",
            "classify - disclosure to the INSURERS is permitted",
            "Classify: Disclosure to the tax advisers is permitted.",
            "Classify: Disclosure to the group's external auditors is permitted.",
            "Classify: Transfer to the auditors is permitted.",
        ] {
            assert!(shared(base, other), "{other}");
        }
        // Two slots apart, or a different frame: no shared key.
        assert!(!shared(
            base,
            "Classify: Disclosure to the lenders is prohibited."
        ));
        assert!(!shared(
            base,
            "Summarize: the auditors may see the accounts."
        ));
    }

    #[test]
    fn short_and_long_prompts_have_no_keys() {
        assert!(masked_keys("Classify: yes no").is_empty());
        assert!(masked_keys(&"word ".repeat(MAX_WORDS + 1)).is_empty());
        // A span is at most a third of the prompt: 6 words allow spans of 1 and 2.
        assert_eq!(masked_keys("a b c d e f").len(), 6 + 5);
    }

    #[test]
    fn the_template_is_shown_with_a_blank_for_the_slot() {
        let members = [
            "Classify: Disclosure to the auditors is permitted.",
            "Classify: Disclosure to the tax advisers is permitted.",
            "Classify: disclosure to the Lenders is permitted",
        ];
        assert_eq!(
            display(&members),
            "Classify: Disclosure to the ___ is permitted."
        );
        assert_eq!(
            display(&[
                "The Recipient shall keep the samples confidential.",
                "The Recipient shall keep the drawings confidential."
            ]),
            "The Recipient shall keep the ___ confidential."
        );
    }

    #[test]
    fn diverse_order_takes_each_answer_in_turn() {
        let answers = [1u64, 1, 1, 1, 2, 1, 3, 2];
        let members: Vec<u32> = (0..8).collect();
        let order = diverse_order(&members, |m| answers[m as usize]);
        assert_eq!(order, vec![0, 4, 6, 1, 7, 2, 3, 5]);
        assert_eq!(&order[..3], &[0, 4, 6], "the first three hold every answer");
    }
}
