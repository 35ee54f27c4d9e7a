//! Splitting a contract into spans the way ContractNLI (Koreeda & Manning, 2021) cuts its
//! NDAs: sentences and list items, never crossing a line break.
//!
//! Offsets are **characters** (Unicode scalar values), `[start, end)`, the unit of ContractNLI's
//! `spans`, so a span found here can be compared with the dataset's gold spans directly.
//! [`split_bytes`] gives the same spans as byte ranges for slicing, and [`CharOffsets`]
//! converts between the two units.
//!
//! The rules, read off how the gold spans cut the 164 train/dev documents (they reproduce
//! about 98% of the gold evidence spans with IoU ≥ 0.5):
//!
//! 1. Every line break ends a span; a span holds no line break.
//! 2. A sentence ends after `.`, `?` or `!` (closing quotes and brackets may follow) when the
//!    next word starts like a sentence: an upper-case letter, a digit, an opening quote or
//!    bracket, a bullet or `§`. Not after an abbreviation (`No.`, `e.g.`, `U.S.`, an initial
//!    `J.`), nor after a clause number that opens the span (`1.`, `(a)`, `5.2.`, `iv.`,
//!    `Section 3.`), nor after a "word" with no letter or digit (`. . .` leaders). `Inc.`,
//!    `Ltd.`, `etc.` and the like end a sentence before a capital or a digit, not before an
//!    opening quote or bracket (`Acme, Inc. ("Acme")`).
//! 3. A list item starts at an inline marker `(a)`, `(iv)`, `(B)` or `(2)`, preceded by
//!    white space; `(30)` after a spelled-out number (`thirty (30) days`) is no marker.
//! 4. A clause number alone at the start of a line (`2.1`, `7`) is a span of its own when a
//!    sentence opener (`The`, `This`, `If`, ...) follows, as ContractNLI has it.
//! 5. A blank to fill in (ten or more `_`) starts a span when white space precedes it and ends
//!    one when white space follows it.
//!
//! Spans are trimmed of white space, in order, and do not overlap; text that is only white
//! space belongs to no span. A span is at most [`MAX_SPAN_CHARS`] characters (cut at white
//! space where there is some), so garbage without punctuation still comes out in pieces.
//! Everything runs in time linear in the text and never panics.

use std::ops::Range;

use serde::{Deserialize, Serialize};

/// The longest span [`split`] returns, in characters. ContractNLI's longest gold span is
/// under 2,000 characters; longer runs are cut at white space (or anywhere, if there is none).
pub const MAX_SPAN_CHARS: usize = 4000;

/// A span of a text: `[start, end)` in characters (Unicode scalar values), ContractNLI's unit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Span {
    /// First character of the span.
    pub start: usize,
    /// One past the last character of the span.
    pub end: usize,
}

impl Span {
    /// The span `[start, end)`.
    pub fn new(start: usize, end: usize) -> Span {
        Span { start, end }
    }

    /// Its length in characters (0 if `end < start`).
    pub fn len(&self) -> usize {
        self.end.saturating_sub(self.start)
    }

    /// Whether it holds no character.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Characters the two spans share.
    pub fn overlap(&self, other: &Span) -> usize {
        self.end
            .min(other.end)
            .saturating_sub(self.start.max(other.start))
    }

    /// Intersection over union of the two spans' characters: 1 for equal spans, 0 for
    /// disjoint ones (and for two empty ones).
    pub fn iou(&self, other: &Span) -> f64 {
        let inter = self.overlap(other);
        let union = self.len() + other.len() - inter;
        if union == 0 {
            0.0
        } else {
            inter as f64 / union as f64
        }
    }
}

impl From<[usize; 2]> for Span {
    /// A ContractNLI `[start, end]` pair.
    fn from([start, end]: [usize; 2]) -> Span {
        Span { start, end }
    }
}

/// Splits `text` into spans (character offsets; see the module documentation for the rules).
pub fn split(text: &str) -> Vec<Span> {
    pieces(text).into_iter().map(|p| p.chars).collect()
}

/// The spans of [`split`] as byte ranges of `text` (each slices `text` at char boundaries).
pub fn split_bytes(text: &str) -> Vec<Range<usize>> {
    pieces(text).into_iter().map(|p| p.bytes).collect()
}

/// The text of `span` (character offsets), clamped to the text. This walks the text from the
/// start; for many spans of one text use [`span_texts`] or [`CharOffsets`].
pub fn span_text<'a>(text: &'a str, span: &Span) -> &'a str {
    let mut start = text.len();
    let mut end = text.len();
    for (k, (b, _)) in text.char_indices().enumerate() {
        if k == span.start {
            start = b;
        }
        if k == span.end {
            end = b;
            break;
        }
    }
    if start >= end {
        ""
    } else {
        &text[start..end]
    }
}

/// The texts of many spans of one text (character offsets), clamped to the text.
pub fn span_texts<'a>(text: &'a str, spans: &[Span]) -> Vec<&'a str> {
    let offsets = CharOffsets::new(text);
    spans.iter().map(|s| offsets.slice(s)).collect()
}

/// [`span_texts`] for spans given as `[start, end)` pairs (ContractNLI's `spans` field).
pub fn pair_texts<'a>(text: &'a str, spans: &[[usize; 2]]) -> Vec<&'a str> {
    let offsets = CharOffsets::new(text);
    spans
        .iter()
        .map(|&[s, e]| offsets.slice(&Span::new(s, e)))
        .collect()
}

/// The best IoU any of `spans` reaches with `target`. `spans` must be sorted and must not
/// overlap (as [`split`] returns them); the search is logarithmic plus the spans touched.
pub fn best_iou(target: &Span, spans: &[Span]) -> f64 {
    // Spans ending after target.start, i.e. those that could overlap it, start here.
    let first = spans.partition_point(|s| s.end <= target.start);
    spans[first..]
        .iter()
        .take_while(|s| s.start < target.end)
        .map(|s| s.iou(target))
        .fold(0.0, f64::max)
}

/// Converts character offsets of one text to byte offsets and back, in near-constant time
/// (it keeps the byte offset of every 64th character).
pub struct CharOffsets<'a> {
    text: &'a str,
    /// Byte offset of character `k * STRIDE`.
    marks: Vec<usize>,
    chars: usize,
}

const STRIDE: usize = 64;

impl<'a> CharOffsets<'a> {
    /// Indexes `text` (one pass).
    pub fn new(text: &'a str) -> CharOffsets<'a> {
        let mut marks = Vec::with_capacity(text.len() / STRIDE + 1);
        let mut chars = 0;
        for (b, _) in text.char_indices() {
            if chars % STRIDE == 0 {
                marks.push(b);
            }
            chars += 1;
        }
        CharOffsets { text, marks, chars }
    }

    /// The text's length in characters.
    pub fn char_len(&self) -> usize {
        self.chars
    }

    /// The byte offset of character `c` (the text's byte length for `c` at or past its end).
    pub fn to_byte(&self, c: usize) -> usize {
        if c >= self.chars {
            return self.text.len();
        }
        let mark = self.marks[c / STRIDE];
        match self.text[mark..].char_indices().nth(c % STRIDE) {
            Some((b, _)) => mark + b,
            None => self.text.len(),
        }
    }

    /// The number of characters that start before byte `b` (so the character offset of `b`
    /// when `b` is a char boundary).
    pub fn to_char(&self, b: usize) -> usize {
        if b >= self.text.len() {
            return self.chars;
        }
        // The last mark at or before `b` (marks[0] is 0).
        let k = self.marks.partition_point(|&m| m <= b).saturating_sub(1);
        let mark = self.marks.get(k).copied().unwrap_or(0);
        k * STRIDE
            + self.text[mark..]
                .char_indices()
                .take_while(|&(o, _)| mark + o < b)
                .count()
    }

    /// The bytes of `span`, clamped to the text.
    pub fn byte_range(&self, span: &Span) -> Range<usize> {
        let start = self.to_byte(span.start);
        start..self.to_byte(span.end).max(start)
    }

    /// The text of `span`, clamped to the text.
    pub fn slice(&self, span: &Span) -> &'a str {
        &self.text[self.byte_range(span)]
    }

    /// `span` without the white space at its ends (ContractNLI's gold spans often end in a
    /// space); an all-white-space span becomes empty, at its start.
    pub fn trim(&self, span: &Span) -> Span {
        let s = self.slice(span);
        let start =
            span.start.min(self.chars) + (s.chars().count() - s.trim_start().chars().count());
        let len = s.trim().chars().count();
        Span::new(start, start + len)
    }
}

/// A span in both units.
struct Piece {
    bytes: Range<usize>,
    chars: Span,
}

/// A whitespace-delimited word of a line.
#[derive(Clone, Copy)]
struct Token {
    bytes: (usize, usize),
    /// Character offsets in the whole text.
    chars: (usize, usize),
}

fn is_line_break(c: char) -> bool {
    matches!(
        c,
        '\n' | '\r' | '\u{0b}' | '\u{0c}' | '\u{85}' | '\u{2028}' | '\u{2029}'
    )
}

fn pieces(text: &str) -> Vec<Piece> {
    let mut out = Vec::new();
    let mut tokens: Vec<Token> = Vec::new();
    // The token being read: start (bytes, chars).
    let mut open: Option<(usize, usize)> = None;
    let mut chars = 0usize;
    for (b, c) in text.char_indices() {
        let space = c.is_whitespace();
        if let Some((sb, sc)) = open {
            // Close at white space, or when a word reaches the span cap by itself.
            if space || chars - sc >= MAX_SPAN_CHARS {
                tokens.push(Token {
                    bytes: (sb, b),
                    chars: (sc, chars),
                });
                open = None;
            }
        }
        if is_line_break(c) {
            split_line(text, &tokens, &mut out);
            tokens.clear();
        } else if !space && open.is_none() {
            open = Some((b, chars));
        }
        chars += 1;
    }
    if let Some((sb, sc)) = open {
        tokens.push(Token {
            bytes: (sb, text.len()),
            chars: (sc, chars),
        });
    }
    split_line(text, &tokens, &mut out);
    out
}

/// Cuts one line, given as its words, into spans.
fn split_line(text: &str, tokens: &[Token], out: &mut Vec<Piece>) {
    if tokens.is_empty() {
        return;
    }
    let word = |t: &Token| &text[t.bytes.0..t.bytes.1];
    let mut start = 0; // index of the token that opens the current span
    let mut emit = |from: &Token, to: &Token| {
        out.push(Piece {
            bytes: from.bytes.0..to.bytes.1,
            chars: Span::new(from.chars.0, to.chars.1),
        })
    };
    for k in 1..tokens.len() {
        let prev = word(&tokens[k - 1]);
        let cur = word(&tokens[k]);
        let before_prev = if k >= 2 { word(&tokens[k - 2]) } else { "" };
        // The previous word numbers the clause this span opens: its period ends no sentence.
        let numbering = (k == start + 1 && is_enumerator(prev))
            || (k == start + 2 && is_section_word(before_prev) && is_section_number(prev));
        let cut = (!numbering && ends_sentence(prev, before_prev, cur))
            || is_inline_marker(cur, prev)
            || (k == 1 && is_bare_number(prev) && SENTENCE_OPENERS.contains(&cur))
            || starts_with_run(cur, '_', BLANK_RUN)
            || ends_with_run(prev, '_', BLANK_RUN)
            || tokens[k].chars.1 - tokens[start].chars.0 > MAX_SPAN_CHARS;
        if cut {
            emit(&tokens[start], &tokens[k - 1]);
            start = k;
        }
    }
    emit(&tokens[start], &tokens[tokens.len() - 1]);
}

/// A blank to fill in is at least this many underscores.
const BLANK_RUN: usize = 10;

/// Words whose final period marks an abbreviation rather than the end of a sentence
/// (lower case, without the period). Compared after stripping opening quotes and brackets,
/// and taking the part after the last `/` or `-` (`non-U.S.`, `Liu/Dr.`).
const ABBREVIATIONS: &[&str] = &[
    "al", "alt", "ann", "approx", "apr", "art", "arts", "assn", "aug", "av", "bros", "bus", "cap",
    "cf", "ch", "civ", "cl", "co", "dec", "dept", "dr", "ex", "exh", "fax", "feb", "fed", "fig",
    "fl", "ft", "gov", "govt", "ibid", "id", "int", "intl", "jan", "jr", "jul", "jun", "mar", "md",
    "mfg", "mr", "mrs", "ms", "mt", "natl", "no", "nos", "nov", "oct", "p", "par", "para", "paras",
    "pg", "ph", "pp", "proc", "prof", "rd", "ref", "refs", "reg", "rev", "sch", "sec", "secs",
    "sep", "sept", "sr", "st", "stat", "str", "subpara", "tel", "v", "viz", "vs",
];

/// Abbreviations that usually close a name, an address or a list, and so often a sentence:
/// their period ends one before a capital or a digit (`..., Acme, Inc. The Company ...`) but
/// not before an opening quote or bracket (`Acme, Inc. ("Acme")`).
const FINAL_ABBREVIATIONS: &[&str] = &[
    "ave", "blvd", "corp", "esq", "etc", "inc", "llc", "ltd", "pty", "seq",
];

/// Words after which a single capital and a period name a part of the document
/// (`Exhibit C.`), which can end a sentence, rather than an initial (`John C. Smith`).
const REFERENCE_WORDS: &[&str] = &[
    "annex",
    "appendix",
    "article",
    "attachment",
    "clause",
    "exhibit",
    "paragraph",
    "part",
    "schedule",
    "section",
];

/// Words that open a sentence after a bare clause number at the start of a line.
const SENTENCE_OPENERS: &[&str] = &[
    "The", "This", "These", "Those", "That", "In", "If", "For", "It", "Its", "Where", "When",
    "Should", "Unless", "Upon", "Any", "A", "An",
];

/// Spelled-out numbers: `thirty (30) days` holds no list marker.
const NUMBER_WORDS: &[&str] = &[
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
    "twenty",
    "thirty",
    "forty",
    "fifty",
    "sixty",
    "seventy",
    "eighty",
    "ninety",
    "hundred",
    "thousand",
];

fn is_closer(c: char) -> bool {
    matches!(c, '"' | '”' | '’' | '\'' | ')' | ']' | '»')
}

fn is_opener(c: char) -> bool {
    matches!(c, '"' | '“' | '‘' | '\'' | '(' | '[' | '«')
}

fn is_terminal(c: char) -> bool {
    matches!(c, '.' | '?' | '!')
}

fn is_roman(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 6
        && (s.bytes().all(|b| b"ivxl".contains(&b)) || s.bytes().all(|b| b"IVXL".contains(&b)))
}

/// `1.2.3`
fn is_bare_number(s: &str) -> bool {
    !s.is_empty()
        && s.split('.')
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
}

/// What numbers a clause or list item: `1.`, `5.2.`, `1.1`... with `.` or `)`, a letter or a
/// roman numeral with `.` or `)`, each maybe in brackets: `a.`, `(b)`, `iv)`, `(3)`.
fn is_enumerator(w: &str) -> bool {
    let (body, close) = match w.char_indices().last() {
        Some((i, c @ ('.' | ')'))) => (&w[..i], c),
        _ => return false,
    };
    let (body, paren) = match body.strip_prefix('(') {
        Some(b) => (b, true),
        None => (body, false),
    };
    if paren && close != ')' {
        return false;
    }
    let letter = body.len() == 1 && body.bytes().all(|b| b.is_ascii_alphabetic());
    letter || is_roman(body) || is_bare_number(body)
}

fn is_section_word(w: &str) -> bool {
    matches!(
        w,
        "Section" | "SECTION" | "Article" | "ARTICLE" | "Clause" | "CLAUSE"
    )
}

/// `12.`, `4.1`, `IV.`
fn is_section_number(w: &str) -> bool {
    let w = w.strip_suffix('.').unwrap_or(w);
    is_bare_number(w) || (!w.is_empty() && w.bytes().all(|b| b"IVX".contains(&b)))
}

/// Whether the word `w` ends a sentence before the word `next`: terminal punctuation (maybe
/// followed by closing quotes or brackets) after something with a letter or digit, not an
/// abbreviation's period, and `next` starts like a sentence. `before` is the word before `w`.
fn ends_sentence(w: &str, before: &str, next: &str) -> bool {
    let Some(first) = next.chars().next() else {
        return false;
    };
    if !starts_sentence(first) {
        return false;
    }
    let unclosed = w.trim_end_matches(is_closer);
    if !unclosed.ends_with(is_terminal) {
        return false;
    }
    let body = unclosed.trim_end_matches(is_terminal);
    if !body.chars().any(char::is_alphanumeric) {
        return false;
    }
    let plain_period = unclosed.len() == w.len() && unclosed.ends_with('.');
    if !plain_period {
        return true;
    }
    match abbreviation(body, before) {
        Abbreviation::No => true,
        Abbreviation::Always => false,
        Abbreviation::Final => first.is_uppercase() || first.is_ascii_digit(),
    }
}

/// What a word before a period is.
enum Abbreviation {
    /// No abbreviation: the period can end a sentence.
    No,
    /// An abbreviation: the period ends no sentence.
    Always,
    /// One of [`FINAL_ABBREVIATIONS`].
    Final,
}

fn abbreviation(body: &str, before: &str) -> Abbreviation {
    let b = body.trim_start_matches(is_opener);
    let b = b.rsplit(['/', '-']).next().unwrap_or(b);
    if b.is_empty() {
        return Abbreviation::No;
    }
    let lower = b.to_lowercase();
    if ABBREVIATIONS.contains(&lower.as_str()) {
        return Abbreviation::Always;
    }
    if FINAL_ABBREVIATIONS.contains(&lower.as_str()) {
        return Abbreviation::Final;
    }
    // U.S, e.g, i.e, J.P, C.F.R: short letter groups joined by periods.
    if b.contains('.')
        && b.split('.')
            .all(|p| (1..=3).contains(&p.len()) && p.bytes().all(|c| c.is_ascii_alphabetic()))
    {
        return Abbreviation::Always;
    }
    // A single letter is an initial, unless it names a part: "Exhibit C."
    let mut cs = b.chars();
    if let (Some(c), None) = (cs.next(), cs.next()) {
        if c.is_alphabetic() {
            let before = before.trim_start_matches(is_opener).to_lowercase();
            if !(c.is_uppercase() && REFERENCE_WORDS.contains(&before.as_str())) {
                return Abbreviation::Always;
            }
        }
    }
    Abbreviation::No
}

/// Whether a word starting with `c` can open a sentence.
fn starts_sentence(c: char) -> bool {
    c.is_uppercase() || c.is_ascii_digit() || is_opener(c) || matches!(c, '•' | '\u{f0b7}' | '§')
}

/// An inline list marker opening the word: `(a)`, `(iv)`, `(B)`, `(12)`, except a number in
/// brackets after a spelled-out or written number (`thirty (30)`, `+44 (0)`).
fn is_inline_marker(w: &str, prev: &str) -> bool {
    let Some(rest) = w.strip_prefix('(') else {
        return false;
    };
    let Some(close) = rest.find(')') else {
        return false;
    };
    let inner = &rest[..close];
    let letter = inner.len() == 1 && inner.bytes().all(|b| b.is_ascii_alphabetic());
    if letter || is_roman(inner) {
        return true;
    }
    if inner.is_empty() || inner.len() > 3 || !inner.bytes().all(|b| b.is_ascii_digit()) {
        return false;
    }
    let p = prev.trim_start_matches(['[', '(']).to_lowercase();
    let last = p.rsplit('-').next().unwrap_or("");
    let numeric = p.starts_with(|c: char| c.is_ascii_digit() || c == '+');
    !(NUMBER_WORDS.contains(&last) || numeric)
}

fn starts_with_run(w: &str, c: char, n: usize) -> bool {
    w.chars().take(n).filter(|&x| x == c).count() == n
}

fn ends_with_run(w: &str, c: char, n: usize) -> bool {
    w.chars().rev().take(n).filter(|&x| x == c).count() == n
}
