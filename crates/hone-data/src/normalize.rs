//! Words as data QA compares them, so that edits which do not change what a text says do not
//! make two texts look different: case and punctuation (`reverse-engineer`, `Reverse
//! engineer`), numbers written out or twice (`two (2) years`, `2 years`), articles and
//! auxiliaries (`shall remain`, `remains`), plural and third-person `s`, contractions
//! (`don't`, `do not`, `cannot`) and British spellings (`organisation`, `licence`,
//! `behaviour`).
//!
//! What must keep two texts apart is kept and also summarised in [`marks`]: negations and
//! numbers, in order. A one-word edit that flips a negation or changes a number is how a
//! data set teaches the difference, so such pairs are not near-duplicates.

use crate::hash::Hasher64;

/// Dropped: they change no meaning a label depends on.
const STOP: &[&str] = &["a", "an", "the", "shall", "will", "is", "are", "be"];

/// Kept, and part of [`marks`].
const NEGATIONS: &[&str] = &["not", "no", "never", "without", "nor", "neither", "none"];

const NUMBERS: &[(&str, &str)] = &[
    ("zero", "0"),
    ("one", "1"),
    ("two", "2"),
    ("three", "3"),
    ("four", "4"),
    ("five", "5"),
    ("six", "6"),
    ("seven", "7"),
    ("eight", "8"),
    ("nine", "9"),
    ("ten", "10"),
    ("eleven", "11"),
    ("twelve", "12"),
    ("thirteen", "13"),
    ("fourteen", "14"),
    ("fifteen", "15"),
    ("sixteen", "16"),
    ("seventeen", "17"),
    ("eighteen", "18"),
    ("nineteen", "19"),
    ("twenty", "20"),
    ("thirty", "30"),
    ("forty", "40"),
    ("fifty", "50"),
    ("sixty", "60"),
    ("seventy", "70"),
    ("eighty", "80"),
    ("ninety", "90"),
    ("hundred", "100"),
];

/// The word before a `'t` contraction, as written out (`don't` is read as `do not`).
const CONTRACTED: &[(&str, &str)] = &[
    ("don", "do"),
    ("doesn", "does"),
    ("didn", "did"),
    ("isn", "is"),
    ("aren", "are"),
    ("wasn", "was"),
    ("weren", "were"),
    ("won", "will"),
    ("wouldn", "would"),
    ("shouldn", "should"),
    ("couldn", "could"),
    ("mustn", "must"),
    ("hasn", "has"),
    ("haven", "have"),
    ("hadn", "had"),
    ("shan", "shall"),
    ("can", "can"),
];

/// Whole-word British spellings whose American form a suffix rule does not give.
const SPELLING: &[(&str, &str)] = &[
    ("licence", "license"),
    ("licences", "licenses"),
    ("defence", "defense"),
    ("offence", "offense"),
    ("judgement", "judgment"),
    ("cheque", "check"),
    ("programme", "program"),
    ("cancelled", "canceled"),
    ("cancelling", "canceling"),
];

/// Lowercased runs of letters and digits.
fn raw_words(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    for c in text.chars() {
        if c.is_alphanumeric() {
            cur.extend(c.to_lowercase());
        } else if !cur.is_empty() {
            out.push(std::mem::take(&mut cur));
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// One word's spelling and inflection folded.
fn fold(w: &str) -> String {
    if let Some(&(_, d)) = NUMBERS.iter().find(|(n, _)| *n == w) {
        return d.to_string();
    }
    let mut w = match SPELLING.iter().find(|(b, _)| *b == w) {
        Some(&(_, a)) => a.to_string(),
        None => w.to_string(),
    };
    if w.len() >= 6 {
        for (b, a) in [
            ("isation", "ization"),
            ("ise", "ize"),
            ("ised", "ized"),
            ("ises", "izes"),
            ("ising", "izing"),
            ("our", "or"),
            ("ours", "ors"),
        ] {
            if let Some(stem) = w.strip_suffix(b) {
                w = format!("{stem}{a}");
                break;
            }
        }
    }
    if w.len() >= 4
        && w.ends_with('s')
        && !w.ends_with("ss")
        && !w.ends_with("us")
        && !w.ends_with("is")
    {
        w.pop();
    }
    w
}

/// The words of `text` as compared.
pub fn words(text: &str) -> Vec<String> {
    let raw = raw_words(text);
    let mut out: Vec<String> = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        let w = raw[i].as_str();
        i += 1;
        // `don't` -> do not; `cannot` -> can not.
        if raw.get(i).is_some_and(|n| n == "t") {
            if let Some(&(_, full)) = CONTRACTED.iter().find(|(c, _)| *c == w) {
                out.push(full.to_string());
                out.push("not".into());
                i += 1;
                continue;
            }
        }
        if w == "cannot" {
            out.push("can".into());
            out.push("not".into());
            continue;
        }
        let f = fold(w);
        if STOP.contains(&f.as_str()) {
            continue;
        }
        // A number given twice (`two (2)`) counts once.
        if is_number(&f) && out.last() == Some(&f) {
            continue;
        }
        out.push(f);
    }
    out
}

fn is_number(w: &str) -> bool {
    w.bytes().all(|b| b.is_ascii_digit())
}

/// Hashes of normalized words.
pub fn hash_words(words: &[String]) -> Vec<u64> {
    words
        .iter()
        .map(|w| {
            let mut h = Hasher64::new();
            h.write(w.as_bytes());
            h.finish()
        })
        .collect()
}

/// Hashes of [`words`].
pub fn word_hashes(text: &str) -> Vec<u64> {
    hash_words(&words(text))
}

/// The negations and numbers among normalized words, in order, as one hash: texts whose
/// marks differ say different things, however alike their other words.
pub fn marks_of(words: &[String]) -> u64 {
    let mut h = Hasher64::new();
    for w in words {
        if NEGATIONS.contains(&w.as_str()) || is_number(w) {
            h.write(w.as_bytes());
            h.sep();
        }
    }
    h.finish()
}

/// [`marks_of`] the words of `text`.
pub fn marks(text: &str) -> u64 {
    marks_of(&words(text))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn same(a: &str, b: &str) -> bool {
        words(a) == words(b)
    }

    #[test]
    fn edits_that_keep_the_meaning_give_the_same_words() {
        assert!(same(
            "The Receiving Party may not reverse engineer the samples.",
            "the receiving party may not Reverse-Engineer the samples"
        ));
        assert!(same(
            "This Agreement remains in force for two years.",
            "This Agreement shall remain in force for two (2) years."
        ));
        assert!(same(
            "You don't need a licence.",
            "You do not need a license"
        ));
        assert!(same("We cannot share it", "We can't share it"));
        assert!(same(
            "The organisation's behaviour was recognised.",
            "The organization's behavior was recognized."
        ));
        assert_eq!(
            words("Two (2) years, then 3 months"),
            vec!["2", "year", "then", "3", "month"]
        );
    }

    #[test]
    fn negations_and_numbers_are_kept_and_marked() {
        let (a, b) = (
            "The Receiving Party may disclose the information.",
            "The Receiving Party may not disclose the information.",
        );
        assert!(!same(a, b));
        assert_ne!(marks(a), marks(b));
        assert_ne!(
            marks("It lasts three years."),
            marks("It lasts five years.")
        );
        assert_eq!(
            marks("It lasts two (2) years."),
            marks("It shall last 2 years.")
        );
        assert_eq!(marks("No numbers here at all."), marks("no"));
    }
}
