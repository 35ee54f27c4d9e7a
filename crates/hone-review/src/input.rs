//! Reading contracts to review: plain text and Markdown, PDF (its text layer), ContractNLI's
//! official JSON and hone's `documents.jsonl` (the evaluation file of `hone data import
//! contractnli`).
//!
//! Every input becomes one or more [`InputDoc`]s: the text, its spans (`[start, end)` in
//! characters, ContractNLI's unit) and warnings a reader of the results must see. Text and PDF
//! are split with [`hone_data::spans::split`]; the JSON formats keep their own (gold) spans, so
//! `hone eval contractnli` compares like with like.
//!
//! The text is normalized minimally: a leading byte-order mark is removed and CRLF (or a lone
//! CR) becomes LF; offsets refer to the normalized text, which is what [`InputDoc::text`] holds.
//! Markdown is reviewed as it is written. A PDF's text lines are rejoined where a sentence was
//! merely wrapped (see [`reflow_pdf_text`]), since a span never crosses a line break.
//!
//! Input that cannot be reviewed (missing, empty, binary, a PDF without a text layer, a JSON
//! file in another format, a text over [`ReadOptions::max_chars`]) is an [`Error::Input`] that
//! names the file and says what to do; nothing here panics on bad input (a PDF reader panic is
//! caught and reported as a corrupt PDF).
//!
//! The PDF text extractor is pdf-extract 0.12 (the newest release). It skips the `'` and `"`
//! text operators and reads a compressed content stream that does not decompress as a page
//! without text, so each page is first readied by `prepare_page`: those operators are
//! rewritten as the `T*` + `Tj` they stand for, and a broken FlateDecode stream is reported as
//! a corrupt PDF (page and object named) rather than as a scan that needs OCR.

use std::collections::HashSet;
use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Instant;

use crate::error::{Error, Result};

/// The default limit on a document's length, in characters (ContractNLI's longest NDA has
/// about 60,000).
pub const DEFAULT_MAX_CHARS: usize = 1_000_000;

/// Below this many characters a document gets the "very short" warning.
pub const SHORT_CHARS: usize = 200;

/// The warning for a document that does not look like English.
pub const NOT_ENGLISH_WARNING: &str = "the document does not look like English; the model was \
     trained on English NDAs, so treat these results as low confidence";

/// Share of English function words among the alphabetic words below which a text is taken as
/// not English. Measured with [`FUNCTION_WORDS`]: ContractNLI's 164 train/dev NDAs score 0.38 to
/// 0.55 (median 0.48); NDA paragraphs in German, French, Spanish, Dutch, Italian and Portuguese
/// score 0.00 to 0.15.
pub const ENGLISH_WORD_SHARE: f64 = 0.2;

/// The function-word test needs at least this many alphabetic words to say anything.
const MIN_WORDS: usize = 30;

/// The script test needs at least this many letters.
const MIN_LETTERS: usize = 20;

/// About a hundred of the most common English function words (and a few contract ones).
pub const FUNCTION_WORDS: &[&str] = &[
    "the",
    "of",
    "and",
    "to",
    "a",
    "in",
    "is",
    "it",
    "that",
    "for",
    "on",
    "with",
    "as",
    "was",
    "be",
    "by",
    "at",
    "this",
    "are",
    "or",
    "from",
    "not",
    "but",
    "have",
    "an",
    "which",
    "they",
    "he",
    "she",
    "we",
    "you",
    "his",
    "her",
    "their",
    "its",
    "has",
    "had",
    "were",
    "been",
    "will",
    "would",
    "shall",
    "may",
    "can",
    "could",
    "should",
    "must",
    "any",
    "all",
    "such",
    "no",
    "if",
    "other",
    "than",
    "then",
    "there",
    "these",
    "those",
    "who",
    "whom",
    "what",
    "when",
    "where",
    "whether",
    "so",
    "do",
    "does",
    "did",
    "into",
    "upon",
    "under",
    "out",
    "up",
    "about",
    "after",
    "before",
    "between",
    "without",
    "within",
    "each",
    "only",
    "also",
    "more",
    "most",
    "same",
    "both",
    "either",
    "nor",
    "our",
    "your",
    "them",
    "him",
    "me",
    "us",
    "my",
    "being",
    "one",
    "two",
    "per",
    "herein",
    "hereof",
    "hereunder",
    "thereof",
    "how",
    "why",
    "while",
    "until",
    "unless",
    "because",
    "through",
    "over",
    "against",
    "during",
    "including",
];

/// One document to review.
#[derive(Clone, Debug, PartialEq)]
pub struct InputDoc {
    /// The file stem for text and PDF; the document's id for the JSON formats.
    pub doc_id: String,
    /// The path as given.
    pub source: String,
    /// The normalized text; `spans` are character offsets into it.
    pub text: String,
    /// `[start, end)` character offsets, in order, none of them blank.
    pub spans: Vec<[usize; 2]>,
    /// Low-confidence notes for the reader (not English, very short, pages without text).
    pub warnings: Vec<String>,
    /// Time spent reading, extracting and splitting, in milliseconds.
    pub read_ms: f64,
}

impl From<&hone_data::contractnli::EvalDocument> for InputDoc {
    /// An annotated document as it is (its own spans, no warnings): what calibration and the
    /// quickstart review.
    fn from(d: &hone_data::contractnli::EvalDocument) -> Self {
        InputDoc {
            doc_id: d.id.clone(),
            source: d.file_name.clone(),
            text: d.text.clone(),
            spans: d.spans.clone(),
            warnings: Vec::new(),
            read_ms: 0.0,
        }
    }
}

/// How inputs are read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReadOptions {
    /// The longest document accepted, in characters (after normalization).
    pub max_chars: usize,
}

impl Default for ReadOptions {
    fn default() -> Self {
        Self {
            max_chars: DEFAULT_MAX_CHARS,
        }
    }
}

const FORMATS: &str = "hone review reads .txt, .md, .pdf and ContractNLI .json";

/// What an input's bytes are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// A PDF's text layer (bytes without a `%PDF-` header are refused as not a PDF).
    Pdf,
    /// ContractNLI's official JSON (every document in it).
    Json,
    /// hone's `documents.jsonl` (every document in it).
    Jsonl,
    /// Plain text or Markdown: UTF-8, or UTF-16 with a byte-order mark.
    Text,
}

impl Format {
    /// The format a file name's extension stands for (text for anything not .pdf, .json or
    /// .jsonl).
    pub fn of_name(name: &str) -> Format {
        let ext = Path::new(name)
            .extension()
            .map(|e| e.to_string_lossy().to_ascii_lowercase())
            .unwrap_or_default();
        match ext.as_str() {
            "pdf" => Format::Pdf,
            "json" => Format::Json,
            "jsonl" => Format::Jsonl,
            _ => Format::Text,
        }
    }
}

/// Reads one input file: text/Markdown and PDF give one document (id: the file stem),
/// ContractNLI's JSON and `documents.jsonl` one per document (id: the document's id).
pub fn read_inputs(path: &Path, opt: &ReadOptions) -> Result<Vec<InputDoc>> {
    let t0 = Instant::now();
    let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
    if meta.is_dir() {
        return Err(Error::input(
            path,
            format!("is a directory; name the contract files in it ({FORMATS})"),
        ));
    }
    let name = path.display().to_string();
    if Format::of_name(&name) == Format::Text && meta.len() > text_byte_limit(opt.max_chars) {
        // Too big to hold the limit's worth of characters, whatever the encoding: say so
        // without reading it all into memory (unless it is a PDF named like text).
        if !is_pdf(&read_head(path, 1024)?) {
            return Err(too_long_streamed(path, meta.len(), opt.max_chars)?);
        }
    }
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    read_bytes_since(t0, &name, &bytes, None, opt)
}

/// Reads one input held in memory (an upload), as [`read_inputs`] reads a file: `name` stands
/// for the file's path (the documents' source and, for text and PDF, their id: its stem; errors
/// name it). `format` says what the bytes are; `None` goes by `name`'s extension, and text
/// that starts like a PDF is read as one.
pub fn read_bytes(
    name: &str,
    bytes: &[u8],
    format: Option<Format>,
    opt: &ReadOptions,
) -> Result<Vec<InputDoc>> {
    read_bytes_since(Instant::now(), name, bytes, format, opt)
}

/// [`read_bytes`], the reading having started at `t0` (a file's reading counts in read_ms).
fn read_bytes_since(
    t0: Instant,
    name: &str,
    bytes: &[u8],
    format: Option<Format>,
    opt: &ReadOptions,
) -> Result<Vec<InputDoc>> {
    let path = Path::new(name);
    let kind = match format {
        Some(f) => f,
        None => match Format::of_name(name) {
            Format::Text if is_pdf(bytes) => Format::Pdf,
            f => f,
        },
    };
    let mut docs = match kind {
        Format::Text => {
            let text = decode_text(path, bytes)?;
            vec![from_text(&file_stem(path), name, text, opt)?]
        }
        Format::Pdf => vec![read_pdf(path, name, bytes, opt)?],
        Format::Json => read_contractnli_json(path, name, bytes, opt)?,
        Format::Jsonl => read_documents_jsonl(path, name, bytes, opt)?,
    };
    // The input's reading and parsing, shared out over its documents, plus each one's own
    // normalizing and splitting (already in read_ms).
    let total = t0.elapsed().as_secs_f64() * 1e3;
    let own: f64 = docs.iter().map(|d| d.read_ms).sum();
    let shared = (total - own).max(0.0) / docs.len().max(1) as f64;
    for d in &mut docs {
        d.read_ms += shared;
    }
    Ok(docs)
}

/// One document from text: normalizes it (BOM, CRLF), checks it (empty, binary, too long),
/// splits it with [`hone_data::spans::split`] and adds the low-confidence warnings.
/// `source` names it in errors.
pub fn from_text(doc_id: &str, source: &str, text: String, opt: &ReadOptions) -> Result<InputDoc> {
    let t0 = Instant::now();
    let path = PathBuf::from(source);
    let text = normalize(text);
    check_text(&path, "", &text, opt)?;
    let spans: Vec<[usize; 2]> = hone_data::spans::split(&text)
        .into_iter()
        .map(|s| [s.start, s.end])
        .collect();
    let spans = drop_blank_spans(&text, spans);
    if spans.is_empty() {
        return Err(Error::input(path, "has no sentences to review"));
    }
    let warnings = warnings(&text);
    Ok(InputDoc {
        doc_id: doc_id.to_string(),
        source: source.to_string(),
        text,
        spans,
        warnings,
        read_ms: t0.elapsed().as_secs_f64() * 1e3,
    })
}

/// The low-confidence warnings for a text: not English, very short.
pub fn warnings(text: &str) -> Vec<String> {
    let mut w = Vec::new();
    if !looks_english(text) {
        w.push(NOT_ENGLISH_WARNING.to_string());
    }
    let n = text.trim().chars().count();
    if n < SHORT_CHARS {
        w.push(format!(
            "very short for a contract ({n} characters); most checks will have nothing to go \
             on, so treat these results as low confidence"
        ));
    }
    w
}

/// Whether `text` looks like English: Latin letters dominate, and (given enough words) at
/// least [`ENGLISH_WORD_SHARE`] of its alphabetic words are English function words.
pub fn looks_english(text: &str) -> bool {
    let (mut letters, mut latin) = (0usize, 0usize);
    for c in text.chars().filter(|c| c.is_alphabetic()) {
        letters += 1;
        if is_latin(c) {
            latin += 1;
        }
    }
    if letters >= MIN_LETTERS && latin * 2 < letters {
        return false;
    }
    let share = function_word_share(text);
    !(share.1 >= MIN_WORDS && share.0 < ENGLISH_WORD_SHARE)
}

/// The share of [`FUNCTION_WORDS`] among the alphabetic words of `text`, and how many
/// words there are.
pub fn function_word_share(text: &str) -> (f64, usize) {
    let set = function_words();
    let (mut words, mut hits) = (0usize, 0usize);
    let mut lower = String::new();
    for w in text
        .split(|c: char| !c.is_alphabetic())
        .filter(|w| !w.is_empty())
    {
        words += 1;
        lower.clear();
        lower.extend(w.chars().flat_map(char::to_lowercase));
        if set.contains(lower.as_str()) {
            hits += 1;
        }
    }
    if words == 0 {
        (0.0, 0)
    } else {
        (hits as f64 / words as f64, words)
    }
}

fn function_words() -> &'static HashSet<&'static str> {
    static SET: OnceLock<HashSet<&'static str>> = OnceLock::new();
    SET.get_or_init(|| FUNCTION_WORDS.iter().copied().collect())
}

fn is_latin(c: char) -> bool {
    c.is_ascii_alphabetic()
        || ('\u{00C0}'..='\u{024F}').contains(&c)
        || ('\u{1E00}'..='\u{1EFF}').contains(&c)
}

/// Removes a leading BOM and turns CRLF and lone CR into LF.
fn normalize(text: String) -> String {
    let t = text.strip_prefix('\u{FEFF}').unwrap_or(&text);
    if !t.contains('\r') {
        return if t.len() == text.len() {
            text
        } else {
            t.to_string()
        };
    }
    t.replace("\r\n", "\n").replace('\r', "\n")
}

/// Empty, NUL characters, too long. `what` is "" for a file, "document X " inside one.
fn check_text(path: &Path, what: &str, text: &str, opt: &ReadOptions) -> Result<()> {
    if text.trim().is_empty() {
        return Err(Error::input(
            path,
            format!("{what}is empty: nothing to review"),
        ));
    }
    if let Some(p) = text.find('\0') {
        return Err(Error::input(path, format!("{what}{}", not_text(p))));
    }
    let n = text.chars().count();
    if n > opt.max_chars {
        return Err(Error::input(
            path,
            format!("{what}{}", too_long(n, opt.max_chars)),
        ));
    }
    Ok(())
}

fn too_long(n: usize, max: usize) -> String {
    format!("has {n} characters, more than the limit of {max}; split it or raise --max-chars")
}

fn not_text(byte: usize) -> String {
    format!("is not text (binary data at byte {byte}); {FORMATS}")
}

/// Drops spans whose text is only white space (or that are empty).
fn drop_blank_spans(text: &str, spans: Vec<[usize; 2]>) -> Vec<[usize; 2]> {
    let offs = hone_data::spans::CharOffsets::new(text);
    spans
        .into_iter()
        .filter(|&[s, e]| {
            !offs
                .slice(&hone_data::spans::Span::new(s, e))
                .trim()
                .is_empty()
        })
        .collect()
}

fn file_stem(path: &Path) -> String {
    path.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string())
}

// ---------------------------------------------------------------------------------------------
// Plain text

/// A text file's bytes as a string: UTF-8 (a UTF-16 file with a byte-order mark is decoded
/// too); NUL bytes, invalid UTF-8 or mostly control characters make it binary.
fn decode_text(path: &Path, bytes: &[u8]) -> Result<String> {
    if bytes.iter().all(|b| b.is_ascii_whitespace()) {
        return Err(Error::input(path, "is empty: nothing to review"));
    }
    if let Some(text) = decode_utf16(bytes) {
        return text.map_err(|p| Error::input(path, not_text(p)));
    }
    if let Some(p) = bytes.iter().position(|&b| b == 0) {
        return Err(Error::input(path, not_text(p)));
    }
    let text =
        std::str::from_utf8(bytes).map_err(|e| Error::input(path, not_text(e.valid_up_to())))?;
    // Control characters other than tab, line feed, vertical tab, form feed and carriage
    // return are rare in text; many of them mean binary data.
    let is_control = |b: &u8| *b < 0x20 && !matches!(b, b'\t' | b'\n' | 0x0b | 0x0c | b'\r');
    let controls = bytes.iter().filter(|b| is_control(b)).count();
    if controls > 0 && controls * 20 > bytes.len() {
        let p = bytes.iter().position(is_control).unwrap_or(0);
        return Err(Error::input(path, not_text(p)));
    }
    Ok(text.to_string())
}

/// A UTF-16 text with a byte-order mark: `Some(Ok(text))`, `Some(Err(byte))` where it is not
/// valid UTF-16; `None` without the mark.
fn decode_utf16(bytes: &[u8]) -> Option<std::result::Result<String, usize>> {
    let le = match bytes {
        [0xFF, 0xFE, ..] => true,
        [0xFE, 0xFF, ..] => false,
        _ => return None,
    };
    if !bytes.len().is_multiple_of(2) {
        return Some(Err(bytes.len() - 1));
    }
    let units = bytes[2..].chunks_exact(2).map(|c| {
        if le {
            u16::from_le_bytes([c[0], c[1]])
        } else {
            u16::from_be_bytes([c[0], c[1]])
        }
    });
    let mut out = String::with_capacity(bytes.len() / 2);
    for (i, r) in char::decode_utf16(units).enumerate() {
        match r {
            Ok('\0') | Err(_) => return Some(Err(2 + 2 * i)),
            Ok(c) => out.push(c),
        }
    }
    Some(Ok(out))
}

/// More bytes than `max_chars` characters can take in any encoding we read (4 bytes a
/// character at most, plus a byte-order mark).
fn text_byte_limit(max_chars: usize) -> u64 {
    (max_chars as u64).saturating_mul(4).saturating_add(4)
}

fn read_head(path: &Path, n: u64) -> Result<Vec<u8>> {
    let mut head = Vec::new();
    File::open(path)
        .and_then(|f| f.take(n).read_to_end(&mut head))
        .map_err(|e| Error::io(path, e))?;
    Ok(head)
}

/// The error for a text file too big to read whole: counts its characters in one streaming
/// pass (UTF-8 lead bytes, CRLF as one), or reports it as binary at its first NUL byte.
fn too_long_streamed(path: &Path, bytes: u64, max: usize) -> Result<Error> {
    const STREAM_LIMIT: u64 = 1 << 30;
    if bytes > STREAM_LIMIT {
        return Ok(Error::input(
            path,
            format!(
                "has {bytes} bytes, far more than the limit of {max} characters; split it or \
                 raise --max-chars"
            ),
        ));
    }
    let mut r =
        BufReader::with_capacity(1 << 16, File::open(path).map_err(|e| Error::io(path, e))?);
    let mut buf = vec![0u8; 1 << 16];
    let (mut chars, mut offset, mut prev_cr) = (0usize, 0usize, false);
    loop {
        let n = r.read(&mut buf).map_err(|e| Error::io(path, e))?;
        if n == 0 {
            break;
        }
        for (i, &b) in buf[..n].iter().enumerate() {
            if b == 0 {
                return Ok(Error::input(path, not_text(offset + i)));
            }
            if b & 0xC0 != 0x80 && !(prev_cr && b == b'\n') {
                chars += 1;
            }
            prev_cr = b == b'\r';
        }
        offset += n;
    }
    Ok(Error::input(path, too_long(chars, max)))
}

// ---------------------------------------------------------------------------------------------
// PDF

/// Whether `bytes` start like a PDF: `%PDF-` within the first 1024 bytes.
pub fn is_pdf(bytes: &[u8]) -> bool {
    let head = &bytes[..bytes.len().min(1024)];
    head.windows(5).any(|w| w == b"%PDF-")
}

enum PdfFail {
    Corrupt(String),
    Encrypted,
}

struct PdfText {
    pages: Vec<String>,
    failed_pages: usize,
    /// Why the first failed page could not be read.
    first_error: Option<String>,
}

fn read_pdf(path: &Path, source: &str, bytes: &[u8], opt: &ReadOptions) -> Result<InputDoc> {
    if !is_pdf(bytes) {
        return Err(Error::input(
            path,
            "is not a PDF (no %PDF- header); give a PDF, or rename a text file to .txt",
        ));
    }
    let got = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| extract_pdf(bytes)));
    let pdf = match got {
        Ok(Ok(pdf)) => pdf,
        Ok(Err(PdfFail::Encrypted)) => {
            return Err(Error::input(
                path,
                "is an encrypted PDF that needs a password; save an unprotected copy first",
            ))
        }
        Ok(Err(PdfFail::Corrupt(msg))) => {
            return Err(Error::input(path, format!("corrupt PDF: {msg}")))
        }
        Err(panic) => {
            let msg = hone_model::error::panic_message(&*panic);
            return Err(Error::input(
                path,
                format!("corrupt PDF (the PDF reader failed: {msg})"),
            ));
        }
    };
    let n_pages = pdf.pages.len();
    let blank = pdf.pages.iter().filter(|p| p.trim().is_empty()).count();
    if blank == n_pages {
        let why = if pdf.failed_pages > 0 {
            format!(
                "corrupt PDF: {} of {n_pages} pages could not be read ({}) and the others have \
                 no text layer",
                pdf.failed_pages,
                pdf.first_error.as_deref().unwrap_or("unknown failure")
            )
        } else {
            "has no text layer (a scanned PDF?); run OCR first".to_string()
        };
        return Err(Error::input(path, why));
    }
    let raw: String = pdf
        .pages
        .iter()
        .map(|p| clean_pdf_chars(p.trim_matches('\n')))
        .filter(|p| !p.trim().is_empty())
        .collect::<Vec<_>>()
        .join("\n");
    let mut doc = from_text(&file_stem(path), source, reflow_pdf_text(&raw), opt)?;
    if pdf.failed_pages > 0 {
        doc.warnings.push(format!(
            "{} of {n_pages} PDF pages could not be read ({}); only the others are reviewed",
            pdf.failed_pages,
            pdf.first_error.as_deref().unwrap_or("unknown failure")
        ));
    }
    let no_text = blank - pdf.failed_pages.min(blank);
    if no_text > 0 {
        doc.warnings.push(format!(
            "{no_text} of {n_pages} PDF pages have no text layer (scanned?); their content is \
             not reviewed"
        ));
    }
    Ok(doc)
}

fn extract_pdf(bytes: &[u8]) -> std::result::Result<PdfText, PdfFail> {
    use pdf_extract::{output_doc_page, Document, PlainTextOutput};
    let mut doc = Document::load_mem(bytes).map_err(|e| PdfFail::Corrupt(e.to_string()))?;
    if doc.is_encrypted() && doc.decrypt("").is_err() {
        return Err(PdfFail::Encrypted);
    }
    let numbers: Vec<(u32, pdf_extract::ObjectId)> = doc.get_pages().into_iter().collect();
    if numbers.is_empty() {
        return Err(PdfFail::Corrupt("it has no pages".to_string()));
    }
    let mut pages = Vec::with_capacity(numbers.len());
    let mut failed = 0;
    let mut first_err = None;
    for (n, id) in numbers {
        let mut s = String::new();
        let r = match prepare_page(&mut doc, n, id) {
            Ok(()) => output_doc_page(&doc, &mut PlainTextOutput::new(&mut s), n)
                .map_err(|e| e.to_string()),
            Err(e) => Err(e),
        };
        if let Err(e) = r {
            failed += 1;
            first_err.get_or_insert(e);
            s.clear();
        }
        pages.push(s);
    }
    if failed == pages.len() {
        return Err(PdfFail::Corrupt(first_err.unwrap_or_default()));
    }
    Ok(PdfText {
        pages,
        failed_pages: failed,
        first_error: first_err,
    })
}

/// Readies page `n` (object `id`) for the text extractor: a content stream that does not
/// decompress is an error naming it (the extractor would read its compressed bytes as no text
/// at all, and the PDF would pass for a scan), and the text-showing operators it skips,
/// `'` and `"` (next line, then show a string), are rewritten as the `T*` and `Tj` they
/// stand for (with `"`'s word and character spacing as `Tw` and `Tc`).
fn prepare_page(
    doc: &mut pdf_extract::Document,
    n: u32,
    id: pdf_extract::ObjectId,
) -> std::result::Result<(), String> {
    use pdf_extract::content::{Content, Operation};
    use pdf_extract::Object;
    // The extractor finds inherited attributes (Resources, MediaBox) by following /Parent
    // without remembering where it has been: a loop there hung it (found by fuzzing).
    let mut seen = std::collections::HashSet::new();
    let mut at = id;
    let looped = loop {
        if !seen.insert(at) {
            break true;
        }
        match doc
            .get_dictionary(at)
            .and_then(|d| d.get(b"Parent"))
            .and_then(Object::as_reference)
        {
            Ok(parent) => at = parent,
            Err(_) => break false,
        }
    };
    if looped {
        return Err(format!(
            "page {n}: its page tree loops (object {} {} is its own ancestor)",
            at.0, at.1
        ));
    }
    for sid in doc.get_page_contents(id) {
        let Ok(stream) = doc.get_object(sid).and_then(Object::as_stream) else {
            continue;
        };
        if let Err(e) = check_flate(stream) {
            return Err(format!(
                "page {n}: its content stream (object {} {}) cannot be decompressed \
                 (FlateDecode: {e})",
                sid.0, sid.1
            ));
        }
    }
    let content = doc
        .get_page_content(id)
        .map_err(|e| format!("page {n}: {e}"))?;
    if !content.contains(&b'\'') && !content.contains(&b'"') {
        return Ok(());
    }
    let Ok(ops) = Content::decode(&content) else {
        return Ok(()); // the extractor reports what it cannot parse
    };
    if !ops
        .operations
        .iter()
        .any(|o| o.operator == "'" || o.operator == "\"")
    {
        return Ok(());
    }
    let mut out = Vec::with_capacity(ops.operations.len() + 8);
    for op in ops.operations {
        match (op.operator.as_str(), op.operands.as_slice()) {
            ("'", [text]) => {
                out.push(Operation::new("T*", vec![]));
                out.push(Operation::new("Tj", vec![text.clone()]));
            }
            ("\"", [aw, ac, text]) => {
                out.push(Operation::new("Tw", vec![aw.clone()]));
                out.push(Operation::new("Tc", vec![ac.clone()]));
                out.push(Operation::new("T*", vec![]));
                out.push(Operation::new("Tj", vec![text.clone()]));
            }
            _ => out.push(op),
        }
    }
    let bytes = Content { operations: out }
        .encode()
        .map_err(|e| format!("page {n}: {e}"))?;
    doc.change_page_content(id, bytes)
        .map_err(|e| format!("page {n}: {e}"))
}

/// Decompresses a stream whose first filter is FlateDecode, to find out whether it can be:
/// the PDF library logs a failure and goes on with what it got (often nothing). As the
/// library does, raw deflate data after the 2-byte header (a bad checksum) passes.
fn check_flate(stream: &pdf_extract::Stream) -> std::io::Result<()> {
    let first = stream
        .filters()
        .ok()
        .and_then(|f| f.first().map(|f| f.to_vec()));
    if first.as_deref() != Some(b"FlateDecode".as_slice()) || stream.content.is_empty() {
        return Ok(());
    }
    let data = &stream.content;
    let mut sink = std::io::sink();
    let zlib = std::io::copy(&mut flate2::read::ZlibDecoder::new(&data[..]), &mut sink);
    match zlib {
        Ok(_) => Ok(()),
        Err(e) => {
            let raw = data
                .get(2..)
                .map(|d| std::io::copy(&mut flate2::read::DeflateDecoder::new(d), &mut sink));
            match raw {
                Some(Ok(_)) => Ok(()),
                _ => Err(e),
            }
        }
    }
}

/// Control characters out of a PDF's text (a reader can produce them from odd fonts): line
/// breaks and tabs stay, form feeds become line breaks, the rest become spaces.
fn clean_pdf_chars(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '\n' | '\t' => c,
            '\u{0c}' | '\r' => '\n',
            c if c.is_control() => ' ',
            c => c,
        })
        .collect()
}

/// Rejoins lines of PDF text that wrap one sentence: a line break becomes a space when the
/// line does not end a sentence or clause (`.`, `?`, `!`, `:`, `;`) and the next line starts
/// with a lower-case letter, or the line ends with a comma, a hyphen or an English function
/// word (`the`, `of`, `and`, ...). Blank lines and everything else stay as they are.
pub fn reflow_pdf_text(text: &str) -> String {
    let set = function_words();
    let mut out = String::with_capacity(text.len());
    let mut prev: Option<&str> = None;
    for line in text.split('\n') {
        if let Some(p) = prev {
            let (p, cur) = (p.trim_end(), line.trim_start());
            if joins(p, cur, set) {
                out.truncate(out.trim_end().len());
                if !p.ends_with('-') {
                    out.push(' ');
                }
                out.push_str(cur);
                prev = Some(line);
                continue;
            }
            out.push('\n');
        }
        out.push_str(line);
        prev = Some(line);
    }
    out
}

fn joins(prev: &str, cur: &str, set: &HashSet<&str>) -> bool {
    let (Some(last), Some(first)) = (prev.chars().last(), cur.chars().next()) else {
        return false;
    };
    if matches!(last, '.' | '?' | '!' | ':' | ';') {
        return false;
    }
    if first.is_lowercase() {
        return true;
    }
    if !first.is_alphanumeric() && !matches!(first, '"' | '\u{201C}' | '\'') {
        // A bullet, a bracketed list marker, a blank to fill in: its own line.
        return false;
    }
    if last == ',' || (last == '-' && prev.chars().rev().nth(1).is_some_and(char::is_alphabetic)) {
        return true;
    }
    // Prose (not a heading in capitals) that ends in "the", "of", "and", ... goes on.
    if !last.is_alphabetic() || !prev.chars().any(char::is_lowercase) {
        return false;
    }
    let word = prev
        .rsplit(|c: char| !c.is_alphabetic())
        .next()
        .unwrap_or("");
    set.contains(word.to_lowercase().as_str())
}

// ---------------------------------------------------------------------------------------------
// ContractNLI JSON and documents.jsonl

fn json_text<'a>(path: &Path, bytes: &'a [u8]) -> Result<&'a str> {
    if bytes.iter().all(|b| b.is_ascii_whitespace()) {
        return Err(Error::input(path, "is empty: nothing to review"));
    }
    let text =
        std::str::from_utf8(bytes).map_err(|e| Error::input(path, not_text(e.valid_up_to())))?;
    Ok(text.strip_prefix('\u{FEFF}').unwrap_or(text))
}

fn read_contractnli_json(
    path: &Path,
    source: &str,
    bytes: &[u8],
    opt: &ReadOptions,
) -> Result<Vec<InputDoc>> {
    use hone_data::contractnli::ShapeError;
    let text = json_text(path, bytes)?;
    const EXPECTED: &str =
        "ContractNLI's JSON is an object with a \"documents\" list of {id, text, spans}";
    let docs = hone_data::contractnli::official_texts(text).map_err(|e| {
        let msg = match e {
            ShapeError::Json(e) => format!(
                "is not valid JSON (line {}, column {}: {e}); {FORMATS}",
                e.line(),
                e.column()
            ),
            ShapeError::DocumentsNotList => {
                format!("has a \"documents\" field that is not a list; {EXPECTED}")
            }
            ShapeError::NoDocuments(keys) => format!(
                "is JSON but not ContractNLI's format: no \"documents\" field (it has: {}); \
                 {EXPECTED}",
                if keys.is_empty() {
                    "nothing".to_string()
                } else {
                    keys.join(", ")
                }
            ),
            ShapeError::TopLevel(kind) => {
                format!("is JSON but not ContractNLI's format: the top level is {kind}; {EXPECTED}")
            }
        };
        Error::input(path, msg)
    })?;
    if docs.is_empty() {
        return Err(Error::input(
            path,
            "has an empty \"documents\" list: nothing to review",
        ));
    }
    docs.into_iter()
        .enumerate()
        .map(|(i, d)| {
            let d = d.map_err(|e| {
                Error::input(
                    path,
                    format!("document {} is not a ContractNLI document: {e}", i + 1),
                )
            })?;
            from_json_doc(path, source, d, opt)
        })
        .collect()
}

fn read_documents_jsonl(
    path: &Path,
    source: &str,
    bytes: &[u8],
    opt: &ReadOptions,
) -> Result<Vec<InputDoc>> {
    let text = json_text(path, bytes)?;
    hone_data::contractnli::documents_lines(text)
        .map(|(line, d)| {
            let d = d.map_err(|e| {
                Error::input(
                    path,
                    format!(
                        "line {line}: not an evaluation document ({e}); expected one JSON object \
                         per line with id, text and spans, as in hone's documents.jsonl"
                    ),
                )
            })?;
            from_json_doc(path, source, d, opt)
        })
        .collect()
}

/// A JSON document: its own spans (checked against the text; blank ones dropped), or the
/// text split when it has none. The text is kept exactly, since the spans point into it.
fn from_json_doc(
    path: &Path,
    source: &str,
    d: hone_data::contractnli::DocumentText,
    opt: &ReadOptions,
) -> Result<InputDoc> {
    let t0 = Instant::now();
    let id = d.id_string();
    let what = format!("document {id} ");
    check_text(path, &what, &d.text, opt)?;
    let spans = match d.spans {
        None => hone_data::spans::split(&d.text)
            .into_iter()
            .map(|s| [s.start, s.end])
            .collect(),
        Some(spans) => {
            let n = d.text.chars().count();
            if let Some((k, [s, e])) = spans.iter().enumerate().find(|(_, [s, e])| s > e || *e > n)
            {
                return Err(Error::input(
                    path,
                    format!(
                        "document {id}: span {k} [{s}, {e}) is outside the text ({n} characters)"
                    ),
                ));
            }
            // Evidence is given by span number and windows are cut at span boundaries, so
            // the spans must tile the text in order (ContractNLI's do).
            if let Some(k) = (1..spans.len()).find(|&k| spans[k][0] < spans[k - 1][1]) {
                let ([a, b], [s, e]) = (spans[k - 1], spans[k]);
                return Err(Error::input(
                    path,
                    format!(
                        "document {id}: span {k} [{s}, {e}) starts before span {} [{a}, {b}) \
                         ends; spans must be in order and must not overlap",
                        k - 1
                    ),
                ));
            }
            spans
        }
    };
    let spans = drop_blank_spans(&d.text, spans);
    if spans.is_empty() {
        return Err(Error::input(path, format!("{what}has no spans to review")));
    }
    let warnings = warnings(&d.text);
    Ok(InputDoc {
        doc_id: id,
        source: source.to_string(),
        text: d.text,
        spans,
        warnings,
        read_ms: t0.elapsed().as_secs_f64() * 1e3,
    })
}
