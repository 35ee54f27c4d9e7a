//! The fuzz targets' bodies: one module per parser that reads user input (GGUF header, JSONL
//! examples, training TOML, OpenAI request JSON, ContractNLI JSON, PDF input). Each `run` takes
//! arbitrary bytes and feeds them through the same functions the CLI and server call; the only
//! acceptable outcomes are `Ok` or an `Err` that names what is wrong. A panic, an abort (out of
//! memory) or a hang is a finding.
//!
//! `fuzz/` wraps each `run` in a `cargo fuzz` target (libFuzzer, nightly); `tests/corpus.rs`
//! replays the committed corpora (`fuzz/corpus/<target>/`) and a short deterministic mutation
//! run of them on stable, so CI keeps every input that once crashed a parser.

pub mod contractnli;
pub mod gguf;
pub mod jsonl;
pub mod mutate;
pub mod openai;
pub mod pdf;
pub mod scratch;
pub mod seeds;
pub mod train_toml;

/// A target's body: arbitrary bytes in, a panic or abort if hone mishandles them.
pub type Target = fn(&[u8]);

/// The targets by name, as `fuzz/fuzz_targets/<name>.rs` and `fuzz/corpus/<name>/` call them.
pub const TARGETS: &[(&str, Target)] = &[
    ("gguf", gguf::run),
    ("jsonl", jsonl::run),
    ("train_toml", train_toml::run),
    ("openai", openai::run),
    ("contractnli", contractnli::run),
    ("pdf", pdf::run),
];

/// Asserts that an error's message is not empty: every refusal must say something.
pub(crate) fn said<E: std::fmt::Display>(e: E) {
    let msg = e.to_string();
    assert!(!msg.trim().is_empty(), "an error with an empty message");
}

/// What every document `hone review` reads must hold: spans in order, not empty, within the
/// text (character offsets), so the review never indexes outside it.
pub(crate) fn check_docs(docs: &[hone_review::input::InputDoc]) {
    for d in docs {
        let chars = d.text.chars().count();
        assert!(!d.spans.is_empty(), "a document with no spans was accepted");
        let mut end = 0;
        for s in &d.spans {
            assert!(
                s[0] < s[1] && s[1] <= chars && s[0] >= end,
                "span {s:?} out of order or outside a text of {chars} characters"
            );
            end = s[1];
        }
    }
}

/// libFuzzer's panic hook aborts on every panic, even one that hone catches on purpose (the PDF
/// reader runs inside `catch_unwind`, so a panic in a third-party parser becomes an error that
/// names the file). This hook keeps aborting for panics in hone's own code and lets a panic in a
/// dependency unwind: if hone catches it, the user got an error; if nothing does, libFuzzer's
/// `catch_unwind` around the target still reports it as a crash. Called by every target.
pub fn dependency_panics_unwind() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let abort_hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let foreign = info.location().is_some_and(|l| {
                let f = l.file();
                f.contains("/.cargo/registry/") || f.contains("/rustc/") || f.contains("/library/")
            });
            if foreign {
                // Said, so that a crash log shows it if nothing catches it.
                eprintln!("hone-fuzz: a dependency panicked: {info}");
            } else {
                abort_hook(info);
            }
        }));
    });
}
