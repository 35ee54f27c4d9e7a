//! SentencePiece tokenizers: from GGUF metadata (`tokenizer.ggml.model = "llama"`) and from
//! Hugging Face `tokenizer.json` files of SentencePiece kind.
//!
//! - Synthetic vocabularies (no files): score-greedy merges, byte fallback, the space prefix,
//!   BOS / EOS, control and user-defined tokens, decoding and streaming.
//! - The real Gemma 3 270M GGUF (`hone model fetch gemma3-270m`; fetched here when it is not
//!   cached, skipped with the reason when it cannot be; `HONE_TEST_GEMMA_GGUF` names another
//!   copy): 260 texts (contract text, code, Unicode with CJK, emoji, combining marks and
//!   characters only byte fallback spells, whitespace runs of tabs, newlines and spaces shorter
//!   and longer than Gemma's longest whitespace token, a leading space, the empty string,
//!   special-token text, and 200 pseudo-random strings), each encoded with special tokens
//!   parsed and not, against the ids of transformers 5.25 and of llama.cpp (llama-cpp-python
//!   0.3.36) for the same file (`tests/fixtures/gemma3_tokenizer.json`, written by
//!   `scripts/fixtures/gemma_tokenizer.py`); decoding gives each text back.
//!
//! # Where transformers and llama.cpp disagree
//!
//! They agree on all but 5 of the 260 texts. There hone follows SentencePiece, the tokenizer
//! Gemma was trained with (its rule checked on a SentencePiece model with the same kind of
//! user-defined whitespace pieces; Gemma's own `tokenizer.model` is not public). SentencePiece
//! matches user-defined pieces (Gemma's runs of 2 to 31 spaces, `▁▁`..) on the text after
//! spaces became `▁`, the longest first, before any merge. So:
//!
//! - A run of more than 31 spaces (2 texts): hone, like llama.cpp and SentencePiece, takes the
//!   longest run token first (40 spaces: 31 + 9). transformers' GGUF conversion spells those
//!   tokens `▁▁`.. in its BPE vocabulary without matching them whole, so its merges cut the
//!   run elsewhere (16 + 24).
//! - A `▁` (U+2581) typed in the text (3 texts): hone, like transformers and SentencePiece,
//!   reads it as the space it stands for (`▁ ` is the two-space token). llama.cpp, whose
//!   converter respelled those tokens with real spaces and which matches them before spaces
//!   are escaped, does not.
//!
//! Any other disagreement fails the test. A fixture without llama.cpp's ids (written where
//! llama-cpp-python is missing) has the runs of spaces checked against SentencePiece's rule.
//!
//! # tokenizer.json
//!
//! Small SentencePiece-kind `tokenizer.json` files (Gemma's shape: a `Replace` normalizer;
//! Mistral's: a `Metaspace` pre-tokenizer and a post-processor adding `<s>`; both BPE with
//! byte fallback) encode and decode like the Python `tokenizers` library
//! (`tests/fixtures/spm_tokenizer/`, written by `scripts/fixtures/spm_tokenizer_json.py`).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::quantized::gguf_file::{self, Value};
use hone_model::fetch;
use hone_model::tokenizer::Tokenizer;

// ---------------------------------------------------------------------------------------------
// Synthetic vocabularies

const NORMAL: i32 = 1;
const UNKNOWN: i32 = 2;
const CONTROL: i32 = 3;
const USER: i32 = 4;
const BYTE: i32 = 6;

/// A SentencePiece vocabulary as GGUF metadata: `(token, score, type)`; ids in order.
fn spm_md(
    entries: &[(&str, f32, i32)],
    extra: &[(&str, Value)],
) -> HashMap<String, gguf_file::Value> {
    let mut md = HashMap::new();
    md.insert(
        "tokenizer.ggml.model".to_string(),
        Value::String("llama".into()),
    );
    md.insert(
        "tokenizer.ggml.tokens".to_string(),
        Value::Array(
            entries
                .iter()
                .map(|e| Value::String(e.0.to_string()))
                .collect(),
        ),
    );
    md.insert(
        "tokenizer.ggml.scores".to_string(),
        Value::Array(entries.iter().map(|e| Value::F32(e.1)).collect()),
    );
    md.insert(
        "tokenizer.ggml.token_type".to_string(),
        Value::Array(entries.iter().map(|e| Value::I32(e.2)).collect()),
    );
    for (k, v) in extra {
        md.insert(k.to_string(), v.clone());
    }
    md
}

/// `<unk> <s> </s>`, the 256 byte tokens, then `rest`.
fn vocab(rest: &[(&'static str, f32, i32)]) -> Vec<(&'static str, f32, i32)> {
    let mut v = vec![
        ("<unk>", 0.0, UNKNOWN),
        ("<s>", 0.0, CONTROL),
        ("</s>", 0.0, CONTROL),
    ];
    for b in 0..=255u8 {
        v.push((String::leak(format!("<0x{b:02X}>")), 0.0, BYTE));
    }
    v.extend_from_slice(rest);
    v
}

fn ids_of(tok: &Tokenizer, pieces: &[&str]) -> Vec<u32> {
    pieces
        .iter()
        .map(|p| tok.token_id(p).unwrap_or_else(|| panic!("no token {p:?}")))
        .collect()
}

fn ids(bos: u32, mut rest: Vec<u32>) -> Vec<u32> {
    rest.insert(0, bos);
    rest
}

fn common_md() -> Vec<(&'static str, Value)> {
    vec![
        ("tokenizer.ggml.unknown_token_id", Value::U32(0)),
        ("tokenizer.ggml.bos_token_id", Value::U32(1)),
        ("tokenizer.ggml.eos_token_id", Value::U32(2)),
    ]
}

#[test]
fn merges_follow_the_merged_token_score_not_position_or_id() {
    // `ab` comes first in the text and in the vocabulary, but `bc` scores higher: `a` + `bc`.
    let entries = vocab(&[
        ("a", -10.0, NORMAL),
        ("b", -11.0, NORMAL),
        ("c", -12.0, NORMAL),
        ("ab", -5.0, NORMAL),
        ("bc", -1.0, NORMAL),
        ("\u{2581}", -20.0, NORMAL),
    ]);
    let mut md_extra = common_md();
    md_extra.push(("tokenizer.ggml.add_space_prefix", Value::Bool(false)));
    let tok = Tokenizer::from_gguf_metadata(&spm_md(&entries, &md_extra)).unwrap();
    assert_eq!(
        tok.encode("abc", false).unwrap(),
        ids(1, ids_of(&tok, &["a", "bc"]))
    );

    // Swap the scores: `ab` + `c`.
    let entries = vocab(&[
        ("a", -10.0, NORMAL),
        ("b", -11.0, NORMAL),
        ("c", -12.0, NORMAL),
        ("ab", -1.0, NORMAL),
        ("bc", -5.0, NORMAL),
    ]);
    let tok = Tokenizer::from_gguf_metadata(&spm_md(&entries, &md_extra)).unwrap();
    assert_eq!(
        tok.encode("abc", false).unwrap(),
        ids(1, ids_of(&tok, &["ab", "c"]))
    );

    // Equal scores: the leftmost pair first ("aa" + "a", not "a" + "aa").
    let entries = vocab(&[("a", -10.0, NORMAL), ("aa", -1.0, NORMAL)]);
    let tok = Tokenizer::from_gguf_metadata(&spm_md(&entries, &md_extra)).unwrap();
    assert_eq!(
        tok.encode("aaa", false).unwrap(),
        ids(1, ids_of(&tok, &["aa", "a"]))
    );
}

#[test]
fn spaces_byte_fallback_prefix_and_decoding() {
    let rest = [
        ("\u{2581}", -1.0, NORMAL),
        ("a", -2.0, NORMAL),
        ("b", -3.0, NORMAL),
        ("\u{2581}a", -4.0, NORMAL),
        ("\u{2581}b", -5.0, NORMAL),
        ("<ctl>", 0.0, CONTROL),
        ("<ud>", 0.0, USER),
    ];
    let entries = vocab(&rest);

    // Llama 2's way: a space prefix (the default), BOS (the default).
    let tok = Tokenizer::from_gguf_metadata(&spm_md(&entries, &common_md())).unwrap();
    assert!(tok.adds_bos());
    assert_eq!(
        tok.encode("a b", false).unwrap(),
        ids(1, ids_of(&tok, &["\u{2581}a", "\u{2581}b"]))
    );
    // `é` is not in the vocabulary: its two UTF-8 bytes.
    assert_eq!(
        tok.encode("aé", false).unwrap(),
        ids(1, ids_of(&tok, &["\u{2581}a", "<0xC3>", "<0xA9>"]))
    );
    // Empty text: BOS alone.
    assert_eq!(tok.encode("", false).unwrap(), vec![1]);
    // Control tokens only on request; user-defined always; a prefix space after each.
    let ctl = tok.token_id("<ctl>").unwrap();
    let ud = tok.token_id("<ud>").unwrap();
    let got = tok.encode("a<ctl>b<ud>a", true).unwrap();
    assert_eq!(
        got,
        ids(
            1,
            [
                ids_of(&tok, &["\u{2581}a"]),
                vec![ctl],
                ids_of(&tok, &["\u{2581}b"]),
                vec![ud],
                ids_of(&tok, &["\u{2581}a"]),
            ]
            .concat()
        )
    );
    let plain = tok.encode("<ctl>", false).unwrap();
    assert!(!plain.contains(&ctl), "{plain:?}");
    assert_eq!(tok.decode(&plain, true).unwrap(), "<ctl>");

    // Decoding: `▁` -> space, bytes fused, the prefix space dropped once.
    let enc = tok.encode("a b aé", false).unwrap();
    assert_eq!(tok.decode(&enc, true).unwrap(), "a b aé");
    assert_eq!(tok.decode(&enc, false).unwrap(), "<s> a b aé");
    assert_eq!(tok.decode(&got, false).unwrap(), "<s> a<ctl> b<ud> a");
    // Streaming gives the same text piece by piece, the split `é` in one piece.
    for skip in [true, false] {
        let mut s = tok.decode_stream(skip);
        let mut pieces = Vec::new();
        for &id in &enc {
            pieces.push(s.step(id).unwrap());
        }
        pieces.push(s.finish().unwrap());
        assert_eq!(pieces.concat(), tok.decode(&enc, skip).unwrap());
        assert!(pieces.contains(&"é".to_string()), "{pieces:?}");
    }
    // Offsets point into the original text (spaces, not `▁`).
    let text = "a b";
    let (oids, offs) = tok.encode_with_offsets(text, false).unwrap();
    assert_eq!(oids, tok.encode(text, false).unwrap());
    assert_eq!(offs, vec![(0, 0), (0, 1), (1, 3)]);

    // Gemma's way: no prefix, no BOS, EOS on request.
    let mut extra = common_md();
    extra.push(("tokenizer.ggml.add_space_prefix", Value::Bool(false)));
    extra.push(("tokenizer.ggml.add_bos_token", Value::Bool(false)));
    extra.push(("tokenizer.ggml.add_eos_token", Value::Bool(true)));
    let tok = Tokenizer::from_gguf_metadata(&spm_md(&entries, &extra)).unwrap();
    assert!(!tok.adds_bos());
    let enc = tok.encode(" a b", false).unwrap();
    assert_eq!(
        enc,
        [ids_of(&tok, &["\u{2581}a", "\u{2581}b"]), vec![2]].concat()
    );
    assert_eq!(tok.decode(&enc, true).unwrap(), " a b");
    assert_eq!(
        tok.encode("ab", false).unwrap(),
        [ids_of(&tok, &["a", "b"]), vec![2]].concat()
    );
}

/// A user-defined run of spaces (stored with spaces, as llama.cpp's converter writes Gemma's
/// `▁▁`) is matched whole, the longest first, after spaces became `▁`.
#[test]
fn user_defined_space_runs_match_like_sentencepiece() {
    let rest = [
        ("\u{2581}", -1.0, NORMAL),
        ("x", -2.0, NORMAL),
        ("\u{2581}x", -3.0, NORMAL),
        ("  ", 0.0, USER),
        ("   ", 0.0, USER),
    ];
    let mut extra = common_md();
    extra.push(("tokenizer.ggml.add_space_prefix", Value::Bool(false)));
    extra.push(("tokenizer.ggml.add_bos_token", Value::Bool(false)));
    let tok = Tokenizer::from_gguf_metadata(&spm_md(&vocab(&rest), &extra)).unwrap();
    let two = tok.token_id("  ").unwrap();
    let three = tok.token_id("   ").unwrap();
    let x = tok.token_id("x").unwrap();
    let sx = tok.token_id("\u{2581}x").unwrap();
    assert_eq!(tok.encode("x  x", false).unwrap(), vec![x, two, x]);
    assert_eq!(
        tok.encode("x     x", false).unwrap(),
        vec![x, three, two, x]
    );
    assert_eq!(tok.encode("x x", false).unwrap(), vec![x, sx]);
    // A typed `▁` is a space.
    assert_eq!(tok.encode("x\u{2581} x", false).unwrap(), vec![x, two, x]);
    assert_eq!(tok.decode(&[x, three, two, x], false).unwrap(), "x     x");
    // The spelling hone reports is the GGUF's.
    assert_eq!(tok.id_to_token(two).as_deref(), Some("  "));
}

#[test]
fn bad_scores_are_an_error() {
    let entries = vocab(&[("a", 0.0, NORMAL)]);
    let mut md = spm_md(&entries, &common_md());
    md.insert(
        "tokenizer.ggml.scores".to_string(),
        Value::Array(vec![Value::F32(0.0)]),
    );
    let err = Tokenizer::from_gguf_metadata(&md).unwrap_err().to_string();
    assert!(err.contains("tokenizer.ggml.scores"), "{err}");
}

// ---------------------------------------------------------------------------------------------
// The real Gemma 3 270M GGUF

/// The Gemma GGUF: `$HONE_TEST_GEMMA_GGUF`, else the cache's (checked), else fetched now;
/// `None` with the reason printed when none of these works.
fn gemma_gguf() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("HONE_TEST_GEMMA_GGUF") {
        return Some(PathBuf::from(p));
    }
    match fetch::resolve("gemma3-270m") {
        Ok(src) => return Some(src.path().to_path_buf()),
        Err(e) => eprintln!("gemma3-270m is not in the cache ({e}); fetching it"),
    }
    let t = Instant::now();
    match fetch::fetch("gemma3-270m", &|m| eprintln!("  {m}")) {
        Ok(p) => {
            eprintln!("fetched gemma3-270m in {:.1} s", t.elapsed().as_secs_f64());
            Some(p)
        }
        Err(e) => {
            eprintln!(
                "SKIP: the Gemma 3 270M GGUF is not cached and could not be fetched ({e}); \
                 run `hone model fetch gemma3-270m` or set HONE_TEST_GEMMA_GGUF"
            );
            None
        }
    }
}

fn fixture(rel: &str) -> serde_json::Value {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(rel);
    serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap()
}

fn id_lists(v: &serde_json::Value) -> Vec<Vec<u32>> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|l| {
            l.as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_u64().unwrap() as u32)
                .collect()
        })
        .collect()
}

/// The longest run of spaces in `text`.
fn longest_space_run(text: &str) -> usize {
    text.split(|c| c != ' ').map(str::len).max().unwrap_or(0)
}

/// SentencePiece's split of a run of `n` spaces by Gemma's whitespace tokens (`"  "` is id
/// 138, `k` spaces id 136 + k, up to 31): the longest first, one `▁` left on its own (which
/// then merges with what follows).
fn spm_space_run(n: usize) -> Vec<u32> {
    let mut out = Vec::new();
    let mut left = n;
    while left >= 2 {
        let k = left.min(31);
        out.push(136 + k as u32);
        left -= k;
    }
    out
}

#[test]
fn gemma3_gguf_tokenizer_matches_transformers_and_llama_cpp() {
    let Some(path) = gemma_gguf() else { return };
    let fx = fixture("gemma3_tokenizer.json");
    let texts: Vec<String> = fx["texts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap().to_string())
        .collect();

    let t = Instant::now();
    let mut f = std::fs::File::open(&path).unwrap();
    let content = gguf_file::Content::read(&mut f).unwrap();
    let read = t.elapsed();
    let t = Instant::now();
    let tok = Tokenizer::from_gguf_metadata(&content.metadata).unwrap();
    let built = t.elapsed();
    eprintln!(
        "Gemma tokenizer: {} tokens; metadata read in {:.0} ms, tokenizer built in {:.0} ms",
        tok.vocab_size(),
        read.as_secs_f64() * 1e3,
        built.as_secs_f64() * 1e3
    );
    assert_eq!(tok.vocab_size(), 262_144);
    assert!(
        built.as_secs_f64() < 2.0,
        "building took {built:?} (about 0.3 s expected)"
    );
    assert_eq!(
        (tok.bos_id(), tok.eos_id(), tok.pad_id(), tok.unk_id()),
        (Some(2), Some(1), Some(0), Some(3))
    );
    assert!(tok.adds_bos());

    let hf = &fx["transformers"];
    let llama = &fx["llama_cpp"];
    if llama.is_null() {
        eprintln!(
            "NOTE: the fixture has no llama.cpp ids ({}); comparing with transformers only",
            fx["llama_cpp_missing"].as_str().unwrap_or("?")
        );
    }

    let mut compared = 0;
    let mut same_as_hf = 0;
    let mut same_as_llama = 0;
    let mut documented = Vec::new();
    let mut failures = Vec::new();
    for (kind, parse_special) in [("plain", false), ("special", true)] {
        let hf_ids = id_lists(&hf[kind]);
        let llama_ids = (!llama.is_null()).then(|| id_lists(&llama[kind]));
        for (i, text) in texts.iter().enumerate() {
            let got = tok.encode(text, parse_special).unwrap();
            assert_eq!(got.first(), Some(&2), "BOS first: {text:?}");
            let got = got[1..].to_vec();
            compared += 1;
            let h = &hf_ids[i];
            let l = llama_ids.as_ref().map(|l| &l[i]);
            same_as_hf += usize::from(&got == h);
            same_as_llama += usize::from(Some(&got) == l);

            let typed_mark = text.contains('\u{2581}');
            let long_run = longest_space_run(text) > 31;
            let expected: Option<&Vec<u32>> = match l {
                Some(l) if l == h => Some(h),
                // The two documented disagreements (see the file's documentation).
                Some(l) if long_run && !typed_mark => Some(l),
                Some(_) if typed_mark && !long_run => Some(h),
                Some(_) => None,
                None if long_run => None,
                None => Some(h),
            };
            match expected {
                Some(e) if &got == e => {
                    if got != *h || l.is_some_and(|l| &got != l) {
                        documented.push(format!("{kind} {text:?}"));
                    }
                }
                Some(e) => failures.push(format!(
                    "{kind} {text:?}:\n  hone         {got:?}\n  expected     {e:?}\n  \
                     transformers {h:?}\n  llama.cpp    {l:?}"
                )),
                None if long_run && l.is_none() => {
                    // No llama.cpp ids: SentencePiece's rule, for the runs of spaces.
                    let run = spm_space_run(longest_space_run(text));
                    let found = got.windows(run.len()).any(|w| w == run.as_slice());
                    if found {
                        documented.push(format!("{kind} {text:?}"));
                    } else {
                        failures.push(format!(
                            "{kind} {text:?}: {got:?} lacks SentencePiece's run split {run:?}"
                        ));
                    }
                }
                None => failures.push(format!(
                    "{kind} {text:?}: transformers and llama.cpp disagree in an undocumented \
                     way:\n  hone {got:?}\n  transformers {h:?}\n  llama.cpp {l:?}"
                )),
            }
        }
    }

    // With BOS, special tokens parsed.
    let with_bos: Vec<String> = fx["with_bos"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap().to_string())
        .collect();
    let hf_bos = id_lists(&hf["bos"]);
    for (i, text) in with_bos.iter().enumerate() {
        let got = tok.encode(text, true).unwrap();
        if got != hf_bos[i] {
            failures.push(format!("bos {text:?}: {got:?} vs {:?}", hf_bos[i]));
        }
        if !llama.is_null() && got != id_lists(&llama["bos"])[i] {
            failures.push(format!("bos (llama.cpp) {text:?}: {got:?}"));
        }
    }

    // Decoding (special tokens kept): hone's ids give the text back (a typed `▁` as the space
    // it stands for, as in transformers and llama.cpp), streamed or not; transformers' decode
    // of its ids agrees.
    let decoded = fx["transformers"]["decoded"].as_array().unwrap();
    for (i, text) in texts.iter().enumerate() {
        let ids = tok.encode(text, true).unwrap();
        let want = text.replace('\u{2581}', " ");
        let back = tok.decode(&ids[1..], false).unwrap();
        if back != want || back != decoded[i].as_str().unwrap() {
            failures.push(format!(
                "decode {text:?} -> {back:?} (transformers: {})",
                decoded[i]
            ));
        }
        if tok.decode(&ids, true).unwrap() != tok.decode(&ids[1..], true).unwrap() {
            failures.push(format!("decode skipping BOS {text:?}"));
        }
        let mut s = tok.decode_stream(false);
        let mut streamed = String::new();
        for &id in &ids[1..] {
            streamed.push_str(&s.step(id).unwrap());
        }
        streamed.push_str(&s.finish().unwrap());
        if streamed != want {
            failures.push(format!("stream {text:?} -> {streamed:?}"));
        }
        let (oids, offs) = tok.encode_with_offsets(text, true).unwrap();
        if oids != ids || offs.iter().any(|&(a, b)| a > b || b > text.len()) {
            failures.push(format!("offsets {text:?}: {offs:?}"));
        }
    }

    eprintln!(
        "compared {compared} encodings ({} texts, special tokens parsed and not) + {} with BOS: \
         {same_as_hf} equal transformers', {same_as_llama} equal llama.cpp's{}; {} follow \
         SentencePiece where the references differ:",
        texts.len(),
        with_bos.len(),
        if llama.is_null() {
            " (none in the fixture)"
        } else {
            ""
        },
        documented.len()
    );
    for d in &documented {
        eprintln!("  {d}");
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

// ---------------------------------------------------------------------------------------------
// tokenizer.json files of SentencePiece kind

#[test]
fn sentencepiece_tokenizer_json_matches_the_tokenizers_library() {
    for shape in ["gemma", "mistral"] {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/spm_tokenizer")
            .join(shape);
        let tok = Tokenizer::from_file(&dir.join("tokenizer.json")).unwrap();
        let fx = fixture(&format!("spm_tokenizer/{shape}/expected.json"));
        let texts: Vec<&str> = fx["texts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_str().unwrap())
            .collect();
        let expected = id_lists(&fx["with_special"]);
        let decoded = fx["decoded"].as_array().unwrap();
        let decoded_skip = fx["decoded_skip"].as_array().unwrap();
        for (i, text) in texts.iter().enumerate() {
            let ids = tok.encode(text, true).unwrap();
            assert_eq!(ids, expected[i], "{shape}: {text:?}");
            assert_eq!(
                tok.decode(&ids, false).unwrap(),
                decoded[i].as_str().unwrap(),
                "{shape}: {text:?}"
            );
            assert_eq!(
                tok.decode(&ids, true).unwrap(),
                decoded_skip[i].as_str().unwrap(),
                "{shape}: {text:?}"
            );
            let mut s = tok.decode_stream(true);
            let mut streamed = String::new();
            for &id in &ids {
                streamed.push_str(&s.step(id).unwrap());
            }
            streamed.push_str(&s.finish().unwrap());
            assert_eq!(
                streamed,
                decoded_skip[i].as_str().unwrap(),
                "{shape}: {text:?}"
            );
        }
        eprintln!("{shape}-style tokenizer.json: {} texts match", texts.len());
    }
}

/// A GGUF SentencePiece tokenizer written out as `tokenizer.json` (what `hone adapter merge`
/// exports) loads back with the same ids.
#[test]
fn gguf_sentencepiece_exports_to_tokenizer_json() {
    let rest = [
        ("\u{2581}", -1.0, NORMAL),
        ("a", -2.0, NORMAL),
        ("b", -3.0, NORMAL),
        ("\u{2581}a", -4.0, NORMAL),
        ("ab", -5.0, NORMAL),
        ("<ctl>", 0.0, CONTROL),
        ("  ", 0.0, USER),
    ];
    let mut extra = common_md();
    extra.push(("tokenizer.ggml.add_space_prefix", Value::Bool(false)));
    let tok = Tokenizer::from_gguf_metadata(&spm_md(&vocab(&rest), &extra)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("tokenizer.json"),
        tok.to_tokenizer_json(false).unwrap(),
    )
    .unwrap();
    let back = Tokenizer::from_file(&dir.path().join("tokenizer.json")).unwrap();
    for text in ["ab a", "a  b\u{e9}", "<ctl>ab", "", "   a"] {
        let a = tok.encode(text, true).unwrap();
        let b = back.encode(text, true).unwrap();
        // The export carries no BOS rule (tokenizer_config.json does): compare without it.
        assert_eq!(&a[1..], b.as_slice(), "{text:?}");
        assert_eq!(
            tok.decode(&a, true).unwrap(),
            back.decode(&b, true).unwrap(),
            "{text:?}"
        );
    }
}
