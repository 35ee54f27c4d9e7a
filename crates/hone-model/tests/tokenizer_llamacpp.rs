//! Token ids equal llama.cpp's own tokenization of the same GGUF (through llama-cpp-python,
//! `Llama(model_path, vocab_only=True).tokenize(text, add_bos=False, special=...)`).
//!
//! The interpreter is `$HONE_LLAMA_PY`, else `~/.cache/hone-peers/llama-venv/bin/python`. If it
//! or `import llama_cpp` is missing, the test prints why and passes (skip).

#[path = "fixtures/tokenizer_common.rs"]
mod common;

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use hone_model::tokenizer::Tokenizer;

const SCRIPT: &str = r#"
import json, sys
req = json.load(sys.stdin)
import llama_cpp
llm = llama_cpp.Llama(model_path=req["model"], vocab_only=True, verbose=False)
out = {"version": getattr(llama_cpp, "__version__", "?"), "plain": [], "special": []}
for t in req["texts"]:
    b = t.encode("utf-8")
    out["plain"].append(llm.tokenize(b, add_bos=False, special=False))
    out["special"].append(llm.tokenize(b, add_bos=False, special=True))
json.dump(out, sys.stdout)
"#;

fn python() -> Option<PathBuf> {
    let py = std::env::var_os("HONE_LLAMA_PY")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .map(|h| PathBuf::from(h).join(".cache/hone-peers/llama-venv/bin/python"))
        })?;
    if !py.is_file() {
        eprintln!(
            "SKIP: llama.cpp comparison: no python at {} (set HONE_LLAMA_PY)",
            py.display()
        );
        return None;
    }
    let ok = Command::new(&py)
        .args(["-c", "import llama_cpp"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !ok {
        eprintln!(
            "SKIP: llama.cpp comparison: `import llama_cpp` fails with {}",
            py.display()
        );
        return None;
    }
    Some(py)
}

/// Extra strings on top of the shared corpus: whitespace and punctuation edge cases.
const EXTRA: &[&str] = &[
    "\n",
    "\n\n",
    " \n \n",
    "a\n\nb",
    "   ",
    "x    y",
    "end with space ",
    "end with newline\n",
    "'s 're 've 'll 'd 'm 't",
    "!!! ??? ... ,,, ;;;",
    "¹²³ ½ ٣ ४ ௫",
    "🤝",
    "naïve café",
    "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n",
];

/// Deterministic pseudo-random strings from a pool of tricky pieces (whitespace runs, digits
/// in several scripts, contractions, punctuation, emoji with modifiers, CJK, special-token
/// fragments), to catch pre-tokenizer differences the hand-written corpus misses.
fn fuzz_strings(n: usize) -> Vec<String> {
    const POOL: &[&str] = &[
        " ",
        "  ",
        "\n",
        "\n\n",
        "\t",
        "\r\n",
        "\u{a0}",
        "\u{3000}",
        "a",
        "The",
        " the",
        "ZZ",
        "é",
        "ß",
        "Ω",
        "я",
        "中",
        "文",
        "日本",
        "한",
        "ع",
        "0",
        "7",
        "42",
        "١٢",
        "६",
        "½",
        "²",
        "'s",
        "'T",
        "'ll",
        "n't",
        "'",
        "\"",
        ".",
        ",",
        "...",
        "—",
        "–",
        "“",
        "”",
        "‘",
        "’",
        "(",
        ")",
        "[",
        "]",
        "{",
        "}",
        "<",
        ">",
        "|",
        "<|",
        "|>",
        "<|im_end|>",
        "<|im_start|>",
        "<|endoftext|>",
        "🤝",
        "🏽",
        "👨‍👩‍👧",
        "🇫🇷",
        "\u{200d}",
        "\u{fe0f}",
        "$",
        "%",
        "#",
        "@",
        "_",
        "-",
        "+",
        "=",
        "/",
        "\\",
        "*",
        "`",
        "~",
        "^",
        "&",
        "!",
        "?",
        ":",
        ";",
    ];
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    (0..n)
        .map(|_| {
            let len = 1 + (next() % 24) as usize;
            (0..len)
                .map(|_| POOL[(next() % POOL.len() as u64) as usize])
                .collect::<String>()
        })
        .collect()
}

#[test]
fn ids_equal_llama_cpp() {
    let Some(model) = common::test_gguf() else {
        return;
    };
    let Some(py) = python() else { return };
    let fuzz = fuzz_strings(300);
    let texts: Vec<&str> = common::CORPUS
        .iter()
        .chain(EXTRA)
        .copied()
        .chain(fuzz.iter().map(|s| s.as_str()))
        .collect();
    let req = serde_json::json!({ "model": model, "texts": texts });

    let mut child = Command::new(&py)
        .args(["-c", SCRIPT])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn python");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(req.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().expect("python runs");
    assert!(
        out.status.success(),
        "llama.cpp script failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let resp: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json from python");
    let as_ids = |v: &serde_json::Value| -> Vec<u32> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_u64().unwrap() as u32)
            .collect()
    };

    let md = common::gguf_metadata(&model);
    let tok = Tokenizer::from_gguf_metadata(&md).unwrap();
    let (mut strings, mut tokens, mut failures) = (0, 0, Vec::new());
    for (kind, parse_special) in [("plain", false), ("special", true)] {
        for (i, text) in texts.iter().enumerate() {
            let expected = as_ids(&resp[kind][i]);
            let ours = tok.encode(text, parse_special).unwrap();
            strings += 1;
            tokens += expected.len();
            if ours != expected {
                let show = |ids: &[u32]| -> Vec<String> {
                    ids.iter()
                        .map(|&i| tok.id_to_token(i).unwrap_or_default())
                        .collect()
                };
                failures.push(format!(
                    "{kind} {text:?}:\n  llama.cpp {expected:?} {:?}\n  hone      {ours:?} {:?}",
                    show(&expected),
                    show(&ours)
                ));
            }
        }
    }
    eprintln!(
        "llama.cpp (llama-cpp-python {}) comparison: {strings} strings, {tokens} tokens, {} mismatches",
        resp["version"],
        failures.len()
    );
    assert!(failures.is_empty(), "mismatches:\n{}", failures.join("\n"));
}
