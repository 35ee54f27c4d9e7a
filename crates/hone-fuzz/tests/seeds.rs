//! The seeds reach past the first checks: each is accepted whole by the parser it seeds, so
//! mutations of them test the deep paths (a seed that failed early would fuzz only the error
//! path of the header).

use hone_model::loader::{LoadOptions, LoadedModel};
use hone_review::input::{read_inputs, ReadOptions};

#[test]
fn the_gguf_seed_loads_as_a_model_with_tokenizer_and_template() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("tiny.gguf");
    std::fs::write(&p, hone_fuzz::seeds::tiny_gguf()).unwrap();
    let m = LoadedModel::load_gguf(&p, &LoadOptions::default()).unwrap();
    assert_eq!(m.model.config.num_hidden_layers, 1);
    assert_eq!(m.model.config.vocab_size, 12);
    let ids = m.tokenizer.encode("ab a", false).unwrap();
    // "ab" is one token by the merge a+b, " a" one by Ġ+a.
    assert_eq!(ids, vec![6, 7]);
}

#[test]
fn a_huge_claimed_context_tabulates_only_the_first_positions() {
    // Found by the gguf fuzz target: context_length 2^30 built a rotary table of 2^30
    // positions (minutes, gigabytes) at load.
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("long.gguf");
    std::fs::write(&p, hone_fuzz::seeds::tiny_gguf_with_context(1 << 30)).unwrap();
    let m = LoadedModel::load_gguf(&p, &LoadOptions::default()).unwrap();
    assert_eq!(m.model.config.max_position_embeddings, 1 << 30);
    assert_eq!(
        m.model.rope().max_pos(),
        hone_model::llama::ROPE_TABLE_POSITIONS
    );
}

#[test]
fn an_alignment_of_zero_is_an_error_not_a_panic() {
    // Found by the gguf fuzz target: candle's header reader divides by general.alignment.
    let mut bytes = hone_fuzz::seeds::tiny_gguf();
    let key = b"general.alignment";
    let at = bytes.windows(key.len()).position(|w| w == key).unwrap() + key.len();
    assert_eq!(
        &bytes[at..at + 8],
        &[4, 0, 0, 0, 32, 0, 0, 0],
        "type u32, value 32"
    );
    bytes[at + 4] = 0;
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("aligned0.gguf");
    std::fs::write(&p, bytes).unwrap();
    let e = LoadedModel::load_gguf(&p, &LoadOptions::default())
        .err()
        .expect("an error")
        .to_string();
    assert!(e.contains("aligned0.gguf"), "{e}");
    assert!(e.contains("not a readable GGUF header"), "{e}");
}

#[test]
fn the_pdf_seeds_give_their_text_including_the_quote_operator() {
    let dir = tempfile::tempdir().unwrap();
    let seeds = hone_fuzz::seeds::seeds("pdf");
    let p = dir.path().join("a.pdf");
    std::fs::write(&p, &seeds[1]).unwrap();
    let docs = read_inputs(&p, &ReadOptions::default()).unwrap();
    assert!(
        docs[0].text.contains("disclose any information"),
        "{}",
        docs[0].text
    );
}

#[test]
fn the_other_seeds_parse() {
    let cfg = hone_train::config::TrainConfig::parse(
        std::str::from_utf8(&hone_fuzz::seeds::seeds("train_toml")[1]).unwrap(),
        std::path::Path::new("/x/train.toml"),
        &[],
    );
    assert!(cfg.is_ok(), "{:?}", cfg.err().map(|e| e.to_string()));
    for s in hone_fuzz::seeds::seeds("jsonl")[0].split(|&b| b == b'\n') {
        if !s.is_empty() {
            hone_data::jsonl::parse_example(s).unwrap_or_else(|p| panic!("{p:?}"));
        }
    }
    let limits = hone_serve::openai::Limits {
        max_tokens_cap: 4096,
        default_max_tokens: 256,
    };
    for s in hone_fuzz::seeds::seeds("openai") {
        let m = hone_serve::openai::parse_body(&s).unwrap();
        let ok = if m.contains_key("messages") {
            hone_serve::openai::chat_request(&m, &limits).is_ok()
        } else {
            hone_serve::openai::completion_request(&m, &limits).is_ok()
        };
        assert!(ok, "{}", String::from_utf8_lossy(&s));
    }
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("c.json");
    std::fs::write(&p, &hone_fuzz::seeds::seeds("contractnli")[0]).unwrap();
    let ds = hone_data::contractnli::official::read(&p).unwrap();
    let imp = hone_data::contractnli::import::import(&ds, &p).unwrap();
    assert_eq!(imp.documents.len(), 2);
    assert_eq!(read_inputs(&p, &ReadOptions::default()).unwrap().len(), 2);
}
