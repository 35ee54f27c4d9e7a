//! Every bad-input case `hone data validate` knows, each reported with its line and field.

use hone_data::tokens::{cached_smollm2, TokenCounter};
use hone_data::validate::{validate_file, ValidateOptions};
use hone_data::{Format, NoProgress};

fn run(lines: &[&[u8]], opts: &ValidateOptions) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("d.jsonl");
    std::fs::write(&p, lines.join(&b"\n"[..])).unwrap();
    let rep = validate_file(&p, &Format::Jsonl, opts, &NoProgress).unwrap();
    rep.problems.iter().map(|p| p.to_string()).collect()
}

const GOOD: &[u8] =
    br#"{"messages":[{"role":"user","content":"Hi"},{"role":"assistant","content":"Hello"}]}"#;

#[test]
fn each_bad_input_names_its_line_and_field() {
    let cases: &[(&[u8], &str)] = &[
        (b"{\"messages\": [", "line 2: bad JSON: EOF while parsing a list at line 1 column 14"),
        (b"{\"instruction\": \"x\", \"output\": \"\xc3\x28\"}", "line 2: invalid UTF-8 at byte 33 of the line"),
        (br#"{"instruction": ["x"], "output": "y"}"#, "line 2: field `instruction`: expected a string, found an array"),
        (br#"{"messages": "hi"}"#, "line 2: field `messages`: expected an array, found a string"),
        (br#"{"instruction": "x"}"#, "line 2: field `output`: missing"),
        (br#"{"instruction": "x", "output": "  "}"#, "line 2: field `output`: empty"),
        (br#"{"messages":[{"role":"user","content":""},{"role":"assistant","content":"a"}]}"#, "line 2: field `messages[0].content`: empty"),
        (br#"{"messages":[{"role":"human","content":"q"},{"role":"assistant","content":"a"}]}"#, "line 2: field `messages[0].role`: unknown role `human` (expected system, user or assistant)"),
        (br#"{"messages":[{"role":"user","content":"q"},{"role":"user","content":"q2"},{"role":"assistant","content":"a"}]}"#, "line 2: field `messages[1].role`: bad role order: `user` after the previous turn, expected `assistant`"),
        (br#"{"messages":[{"role":"user","content":"q"}]}"#, "line 2: field `messages[0].role`: bad role order: the conversation must end with an assistant message"),
        (br#"{"text": "q"}"#, "line 2: field `messages`: missing: expected `messages` (chat format) or `instruction` and `output` (instruction format)"),
        (b"42", "line 2: expected a JSON object, found a number"),
    ];
    let opts = ValidateOptions { max_seq_len: None };
    for (bad, want) in cases {
        let got = run(&[GOOD, bad, GOOD], &opts);
        assert_eq!(got, [*want], "for {}", String::from_utf8_lossy(bad));
    }
    // Several problems: all reported, each with its own line.
    let got = run(&[b"{", GOOD, br#"{"instruction": 1}"#], &opts);
    assert_eq!(got.len(), 3, "{got:?}");
    assert!(got[0].starts_with("line 1: bad JSON"));
    assert_eq!(
        &got[1..],
        [
            "line 3: field `instruction`: expected a string, found a number",
            "line 3: field `output`: missing"
        ]
    );
}

#[test]
fn too_long_for_max_seq_len_with_the_real_tokenizer() {
    let Some(path) = cached_smollm2() else {
        println!("skipped: smollm2 is not cached (hone model fetch smollm2)");
        return;
    };
    let counter = TokenCounter::from_gguf(&path).unwrap();
    let long = format!(
        r#"{{"instruction": "{}", "output": "ok"}}"#,
        "word ".repeat(300)
    );
    let n = counter
        .count(&hone_data::jsonl::parse_example(long.as_bytes()).unwrap())
        .unwrap();
    let short_n = counter
        .count(&hone_data::jsonl::parse_example(GOOD).unwrap())
        .unwrap();
    assert!(n > 300 && short_n < 40, "{n} {short_n}");
    let got = run(
        &[GOOD, long.as_bytes()],
        &ValidateOptions {
            max_seq_len: Some((256, &counter)),
        },
    );
    assert_eq!(
        got,
        [format!(
            "line 2: field `messages`: too long: {n} tokens, more than --max-seq-len 256"
        )]
    );
}

/// A line far over what --max-seq-len can take is reported with its line number without being
/// read into memory or tokenized (a 52 MB line took 4.8 GB); a text over it in a line that
/// is read is flagged without tokenizing.
#[test]
fn a_huge_line_is_reported_without_reading_or_tokenizing_it() {
    let Some(path) = cached_smollm2() else {
        println!("skipped: smollm2 is not cached (hone model fetch smollm2)");
        return;
    };
    let counter = TokenCounter::from_gguf(&path).unwrap();
    let per_token = counter.max_token_bytes();
    assert!((16..1000).contains(&per_token), "{per_token}");
    let opts = ValidateOptions {
        max_seq_len: Some((64, &counter)),
    };
    // The line limit for 64 tokens is 1 MiB (its floor); this line is 4 MiB.
    let huge = format!(
        r#"{{"instruction": "{}", "output": "ok"}}"#,
        "word ".repeat(800_000)
    );
    let got = run(&[GOOD, huge.as_bytes(), GOOD], &opts);
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(
        got[0].starts_with(&format!(
            "line 2: the line is {} bytes, more than",
            huge.len() + 1
        )) && got[0].contains("--max-seq-len 64")
            && got[0].contains("skipped without being read"),
        "{got:?}"
    );
    // 200 KB of text: read (under the line limit) but over 64 tokens by its length alone.
    let long = format!(
        r#"{{"instruction": "{}", "output": "ok"}}"#,
        "word ".repeat(40_000)
    );
    let got = run(&[GOOD, long.as_bytes()], &opts);
    assert_eq!(
        got,
        [format!(
            "line 2: field `messages`: too long: 200002 bytes of text, at least {} tokens (at \
             most {per_token} bytes per token; {} bytes at most fit), more than --max-seq-len 64",
            200_002usize.div_ceil(per_token),
            64 * per_token
        )]
    );
}
