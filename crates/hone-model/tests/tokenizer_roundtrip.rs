//! Tokenizer built from the real SmolLM2 GGUF: round trips, special tokens, streaming decode,
//! hand-checked ids.

#[path = "fixtures/tokenizer_common.rs"]
mod common;

use hone_model::tokenizer::{DecodeStream, Tokenizer};

fn load() -> Option<Tokenizer> {
    let path = common::test_gguf()?;
    let md = common::gguf_metadata(&path);
    Some(Tokenizer::from_gguf_metadata(&md).expect("tokenizer from gguf"))
}

fn tokens(tok: &Tokenizer, ids: &[u32]) -> Vec<String> {
    ids.iter().map(|&i| tok.id_to_token(i).unwrap()).collect()
}

#[test]
fn metadata_and_special_ids() {
    let Some(tok) = load() else { return };
    assert_eq!(tok.vocab_size(), 49152);
    assert_eq!(tok.bos_id(), Some(1));
    assert_eq!(tok.eos_id(), Some(2));
    assert!(!tok.adds_bos(), "SmolLM2 has add_bos_token = false");
    assert_eq!(tok.token_id("<|endoftext|>"), Some(0));
    assert_eq!(tok.token_id("<|im_start|>"), Some(1));
    assert_eq!(tok.token_id("<|im_end|>"), Some(2));
    assert_eq!(tok.id_to_token(2).as_deref(), Some("<|im_end|>"));
    for id in 0..17 {
        assert!(tok.is_special(id), "id {id} should be special");
    }
    assert!(!tok.is_special(17));
    assert!(!tok.is_special(tok.token_id("Hello").unwrap()));
    assert_eq!(tok.id_to_token(49152), None);
}

#[test]
fn round_trip_corpus() {
    let Some(tok) = load() else { return };
    let mut total = 0;
    for text in common::CORPUS {
        for parse_special in [false, true] {
            let ids = tok.encode(text, parse_special).unwrap();
            total += ids.len();
            assert!(ids.iter().all(|&i| (i as usize) < tok.vocab_size()));
            let back = tok.decode(&ids, false).unwrap();
            assert_eq!(
                &back,
                text,
                "round trip (parse_special={parse_special}) of {text:?}: {:?}",
                tokens(&tok, &ids)
            );
        }
    }
    assert!(total > 500, "corpus too small: {total} tokens");
}

#[test]
fn special_tokens_parsed_only_on_request() {
    let Some(tok) = load() else { return };
    let text = "<|im_start|>user\nHi<|im_end|>\n";
    let parsed = tok.encode(text, true).unwrap();
    assert_eq!(parsed[0], 1, "{:?}", tokens(&tok, &parsed));
    assert_eq!(
        tokens(&tok, &parsed),
        ["<|im_start|>", "user", "Ċ", "Hi", "<|im_end|>", "Ċ"]
    );
    let plain = tok.encode(text, false).unwrap();
    assert!(
        plain.iter().all(|&i| !tok.is_special(i)),
        "{:?}",
        tokens(&tok, &plain)
    );
    assert!(plain.len() > parsed.len());
    assert_eq!(tok.decode(&plain, false).unwrap(), text);
    // skip_special drops the control tokens only.
    assert_eq!(tok.decode(&parsed, true).unwrap(), "user\nHi\n");
    assert_eq!(tok.decode(&parsed, false).unwrap(), text);
}

#[test]
fn hand_checked_ids() {
    let Some(tok) = load() else { return };
    // smollm pre-tokenizer: every digit on its own, no prefix space.
    let ids = tok.encode("1234567 2026-11-28", false).unwrap();
    assert_eq!(
        tokens(&tok, &ids),
        [
            "1", "2", "3", "4", "5", "6", "7", "Ġ", "2", "0", "2", "6", "-", "1", "1", "-", "2",
            "8"
        ]
    );
    let digit = |d: &str| tok.token_id(d).unwrap();
    assert_eq!(ids[0], digit("1"));
    assert_eq!(ids[6], digit("7"));
    let ids = tok.encode("Hello world", false).unwrap();
    assert_eq!(tokens(&tok, &ids), ["Hello", "Ġworld"]);
    assert_eq!(ids, [19556, 905]);
    assert_eq!(
        tok.encode("0123456789", false).unwrap(),
        [32, 33, 34, 35, 36, 37, 38, 39, 40, 41]
    );
    // No prefix space is added.
    let ids = tok.encode("hello", false).unwrap();
    assert_eq!(tokens(&tok, &ids), ["hello"]);
    assert!(tok.encode("", true).unwrap().is_empty());
}

fn stream_all(tok: &Tokenizer, ids: &[u32], skip_special: bool) -> (String, usize) {
    let mut s = DecodeStream::new(tok, skip_special);
    let mut out = String::new();
    let mut pieces = 0;
    for &id in ids {
        let piece = s.step(id).unwrap();
        // Never a partial character: each piece is a whole &str already; no replacement char
        // appears unless decode has one too.
        if !piece.is_empty() {
            pieces += 1;
        }
        out.push_str(&piece);
    }
    out.push_str(&s.finish().unwrap());
    (out, pieces)
}

#[test]
fn decode_stream_equals_decode() {
    let Some(tok) = load() else { return };
    for text in common::CORPUS {
        let ids = tok.encode(text, true).unwrap();
        for skip in [false, true] {
            let (streamed, _) = stream_all(&tok, &ids, skip);
            assert_eq!(
                streamed,
                tok.decode(&ids, skip).unwrap(),
                "stream of {text:?}"
            );
        }
    }
    // Multi-byte characters split across byte-level tokens are held back until complete.
    let emoji = "🤝🏽";
    let ids = tok.encode(emoji, false).unwrap();
    assert!(
        ids.len() > 2,
        "emoji should span several byte tokens: {:?}",
        tokens(&tok, &ids)
    );
    let mut s = tok.decode_stream(false);
    let pieces: Vec<String> = ids.iter().map(|&i| s.step(i).unwrap()).collect();
    assert!(pieces.iter().all(|p| !p.contains('\u{FFFD}')), "{pieces:?}");
    assert_eq!(pieces.concat(), emoji);
    // A truncated sequence: decode and the stream agree on the replacement character.
    let cut = &ids[..ids.len() - 1];
    let (streamed, _) = stream_all(&tok, cut, false);
    let decoded = tok.decode(cut, false).unwrap();
    assert!(decoded.contains('\u{FFFD}'), "{decoded:?}");
    assert_eq!(streamed, decoded);
    // Garbage byte tokens in the middle.
    let bad: Vec<u32> = [tok.token_id("Hello").unwrap()]
        .into_iter()
        .chain(cut.iter().copied())
        .chain(tok.encode(" world", false).unwrap())
        .collect();
    let (streamed, _) = stream_all(&tok, &bad, false);
    assert_eq!(streamed, tok.decode(&bad, false).unwrap());
}

#[test]
fn bad_id_is_an_error() {
    let Some(tok) = load() else { return };
    assert!(tok.decode(&[49152], false).is_err());
    assert!(tok.decode_stream(false).step(1_000_000).is_err());
}

#[test]
fn clone_and_threads() {
    let Some(tok) = load() else { return };
    let expected = tok.encode(common::CORPUS[6], false).unwrap();
    let handles: Vec<_> = (0..2)
        .map(|_| {
            let t = tok.clone();
            std::thread::spawn(move || t.encode(common::CORPUS[6], false).unwrap())
        })
        .collect();
    for h in handles {
        assert_eq!(h.join().unwrap(), expected);
    }
}

#[test]
fn tokenizer_json_construction_matches() {
    let Some(tok) = load() else { return };
    let dir = tempfile::tempdir().unwrap();
    let json = tok.to_tokenizer_json(false).unwrap();
    // As exported, and with the pre-tokenizer Hugging Face ships for SmolLM2
    // (Digits(individual) + ByteLevel).
    let mut hf_style: serde_json::Value = serde_json::from_str(&json).unwrap();
    hf_style["pre_tokenizer"] = serde_json::json!({
        "type": "Sequence",
        "pretokenizers": [
            {"type": "Digits", "individual_digits": true},
            {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true}
        ]
    });
    std::fs::write(
        dir.path().join("tokenizer_config.json"),
        r#"{"bos_token": "<|im_start|>", "eos_token": {"content": "<|im_end|>"}, "add_bos_token": false}"#,
    )
    .unwrap();
    for (name, text) in [("exported", json), ("hf_style", hf_style.to_string())] {
        let path = dir.path().join("tokenizer.json");
        std::fs::write(&path, text).unwrap();
        let other = Tokenizer::from_file(&path).unwrap();
        assert_eq!(other.bos_id(), Some(1), "{name}");
        assert_eq!(other.eos_id(), Some(2), "{name}");
        assert_eq!(other.vocab_size(), tok.vocab_size(), "{name}");
        assert_eq!(other.special_ids(), (0..17).collect::<Vec<u32>>(), "{name}");
        for text in common::CORPUS {
            for parse_special in [false, true] {
                let a = tok.encode(text, parse_special).unwrap();
                let b = other.encode(text, parse_special).unwrap();
                assert_eq!(a, b, "{name} {text:?} parse_special={parse_special}");
                assert_eq!(other.decode(&b, false).unwrap(), *text);
            }
        }
    }
}
