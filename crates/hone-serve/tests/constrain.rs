//! Constrained JSON decoding with the real SmolLM2 tokenizer (49,152 ids), driven by
//! adversarial "models": seeded random logits, argmax after masking.

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use hone_model::tokenizer::Tokenizer;
use hone_serve::constrain::{Constraint, ConstraintFactory};
use hone_serve::ServeError;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

fn smollm2_path() -> Option<PathBuf> {
    hone_model::fetch::cached_for_tests("smollm2")
}

struct Setup {
    tok: Tokenizer,
    factory: ConstraintFactory,
    /// Each id's decoded text (for the adversaries' biases).
    texts: Vec<String>,
}

/// The tokenizer and factory, built once for all tests of this file.
fn setup() -> Option<&'static Setup> {
    static SETUP: OnceLock<Option<Setup>> = OnceLock::new();
    SETUP
        .get_or_init(|| {
            let path = smollm2_path()?;
            let tok = Tokenizer::from_gguf_file(&path).expect("tokenizer from the SmolLM2 GGUF");
            let t0 = Instant::now();
            let factory = ConstraintFactory::new(&tok, tok.vocab_size()).expect("factory");
            eprintln!("ConstraintFactory::new: {:?}", t0.elapsed());
            let texts = (0..tok.vocab_size() as u32)
                .map(|i| tok.decode(&[i], false).unwrap())
                .collect();
            Some(Setup {
                tok,
                factory,
                texts,
            })
        })
        .as_ref()
}

fn nli_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "verdict": {"enum": ["entailed", "contradicted", "not_mentioned"]},
            "confidence": {"type": "number"},
            "clauses": {"type": "array", "items": {"type": "integer"}}
        },
        "required": ["verdict", "confidence", "clauses"],
        "additionalProperties": false
    })
}

/// An adversarial model: fresh random logits each step plus a fixed per-id bias.
struct Adversary {
    rng: StdRng,
    bias: Vec<f32>,
    /// From this step on, `late_bias` is added too (an impatient model, so that the walk
    /// through unbounded grammars like `json_object` ends).
    late_from: usize,
    late_bias: Vec<f32>,
}

impl Adversary {
    fn uniform(seed: u64, vocab: usize) -> Self {
        Self {
            rng: StdRng::seed_from_u64(seed),
            bias: vec![0.0; vocab],
            late_from: usize::MAX,
            late_bias: vec![0.0; vocab],
        }
    }

    fn logits(&mut self, step: usize) -> Vec<f32> {
        let late = step >= self.late_from;
        (0..self.bias.len())
            .map(|i| {
                let mut l = self.rng.gen_range(-1.0f32..1.0) + self.bias[i];
                if late {
                    l += self.late_bias[i];
                }
                l
            })
            .collect()
    }
}

struct Run {
    ids: Vec<u32>,
    text: String,
    ended_with_eos: bool,
    mask_times: Vec<Duration>,
}

/// Masks, takes the argmax and commits until EOS or `cap` steps. Also checks the mask itself:
/// the argmax is finite, and every finite logit was left untouched.
fn drive(s: &Setup, c: &mut Constraint, adv: &mut Adversary, cap: usize) -> Run {
    let eos = s.tok.eos_id().unwrap();
    let mut ids = Vec::new();
    let mut mask_times = Vec::new();
    let mut ended_with_eos = false;
    for step in 0..cap {
        let orig = adv.logits(step);
        let mut logits = orig.clone();
        let t0 = Instant::now();
        c.mask_logits(&mut logits).unwrap();
        mask_times.push(t0.elapsed());
        for (a, b) in logits.iter().zip(&orig) {
            assert!(*a == f32::NEG_INFINITY || a == b);
        }
        let (best, val) = logits
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .unwrap();
        assert!(val.is_finite(), "mask allowed nothing at step {step}");
        let best = best as u32;
        c.commit(best)
            .unwrap_or_else(|e| panic!("commit of the masked argmax {best}: {e}"));
        if best == eos {
            ended_with_eos = true;
            break;
        }
        assert!(
            !s.tok.is_special(best),
            "special token {best} allowed inside JSON"
        );
        ids.push(best);
    }
    let text = s.tok.decode(&ids, false).unwrap();
    Run {
        ids,
        text,
        ended_with_eos,
        mask_times,
    }
}

/// Whitespace outside JSON strings (the grammar is compiled compact).
fn whitespace_outside_strings(text: &str) -> bool {
    let mut in_str = false;
    let mut escaped = false;
    for ch in text.chars() {
        if in_str {
            if escaped {
                escaped = false;
            } else if ch == '\\' {
                escaped = true;
            } else if ch == '"' {
                in_str = false;
            }
        } else if ch == '"' {
            in_str = true;
        } else if ch.is_whitespace() {
            return true;
        }
    }
    false
}

/// Checks the syntax of every number outside strings (JSON's grammar:
/// `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`) and replaces it with `0` (an integer) or
/// `0.5` (any other number), so that serde_json parses the structure whatever the magnitude
/// (it refuses `1E400`). A malformed number is an error.
fn canonicalize_numbers(text: &str) -> Result<String, String> {
    let b = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let (mut i, mut in_str, mut escaped) = (0, false, false);
    let digits = |mut j: usize| {
        let s = j;
        while j < b.len() && b[j].is_ascii_digit() {
            j += 1;
        }
        (j, j - s)
    };
    while i < b.len() {
        let c = b[i];
        if in_str {
            if escaped {
                escaped = false;
            } else if c == b'\\' {
                escaped = true;
            } else if c == b'"' {
                in_str = false;
            }
        } else if c == b'"' {
            in_str = true;
        } else if c == b'-' || c.is_ascii_digit() {
            let start = i;
            let mut j = if c == b'-' { i + 1 } else { i };
            let (end, n) = digits(j);
            if n == 0 {
                return Err(format!("{text:?}: number without digits at {start}"));
            }
            if n > 1 && b[j] == b'0' {
                return Err(format!("{text:?}: leading zero at {start}"));
            }
            j = end;
            let mut integer = true;
            if j < b.len() && b[j] == b'.' {
                let (end, n) = digits(j + 1);
                if n == 0 {
                    return Err(format!("{text:?}: no digits after '.' at {start}"));
                }
                j = end;
                integer = false;
            }
            if j < b.len() && (b[j] == b'e' || b[j] == b'E') {
                j += 1;
                if j < b.len() && (b[j] == b'+' || b[j] == b'-') {
                    j += 1;
                }
                let (end, n) = digits(j);
                if n == 0 {
                    return Err(format!("{text:?}: no exponent digits at {start}"));
                }
                j = end;
                integer = false;
            }
            out.push_str(if integer { "0" } else { "0.5" });
            i = j;
            continue;
        }
        // Copy one whole UTF-8 character.
        let len = text[i..].chars().next().unwrap().len_utf8();
        out.push_str(&text[i..i + len]);
        i += len;
    }
    Ok(out)
}

fn check_nli(text: &str) {
    let canon = canonicalize_numbers(text).unwrap_or_else(|e| panic!("{e}"));
    let v: Value =
        serde_json::from_str(&canon).unwrap_or_else(|e| panic!("{text:?} is not JSON: {e}"));
    let o = v
        .as_object()
        .unwrap_or_else(|| panic!("{text:?}: not an object"));
    assert_eq!(o.len(), 3, "{text:?}: exactly the three properties");
    assert!(
        ["entailed", "contradicted", "not_mentioned"]
            .contains(&o["verdict"].as_str().unwrap_or("")),
        "{text:?}: verdict"
    );
    assert!(o["confidence"].is_number(), "{text:?}: confidence");
    let clauses = o["clauses"]
        .as_array()
        .unwrap_or_else(|| panic!("{text:?}: clauses is not an array"));
    assert!(
        clauses.iter().all(|c| c == &json!(0)),
        "{text:?}: clauses are integers"
    );
    assert!(
        !whitespace_outside_strings(text),
        "{text:?}: whitespace outside strings"
    );
}

#[test]
fn schema_output_is_valid_under_random_logits() {
    let Some(s) = setup() else { return };
    let vocab = s.tok.vocab_size();
    let mut times = Vec::new();
    let mut verdicts = std::collections::HashSet::new();
    for seed in 0..8 {
        let t0 = Instant::now();
        let mut c = s.factory.json_schema(&nli_schema()).unwrap();
        if seed == 0 {
            eprintln!("json_schema (compile): {:?}", t0.elapsed());
        }
        let mut adv = Adversary::uniform(seed, vocab);
        let run = drive(s, &mut c, &mut adv, 400);
        assert!(
            run.ended_with_eos,
            "seed {seed}: no EOS within 400 steps: {:?}",
            run.text
        );
        assert!(c.is_finished(), "seed {seed}");
        eprintln!("seed {seed}: {} tokens: {}", run.ids.len(), run.text);
        check_nli(&run.text);
        verdicts.insert(
            serde_json::from_str::<Value>(&canonicalize_numbers(&run.text).unwrap()).unwrap()
                ["verdict"]
                .as_str()
                .unwrap()
                .to_string(),
        );
        times.extend(run.mask_times);
    }
    // The adversary is random, not stuck on one branch.
    assert!(verdicts.len() >= 2, "verdicts seen: {verdicts:?}");
    times.sort();
    let total: Duration = times.iter().sum();
    eprintln!(
        "mask_logits over {} steps: mean {:?}, median {:?}, max {:?}",
        times.len(),
        total / times.len() as u32,
        times[times.len() / 2],
        times[times.len() - 1]
    );
}

/// A model that loves whitespace and newlines still produces compact JSON.
#[test]
fn whitespace_loving_model_gets_compact_json() {
    let Some(s) = setup() else { return };
    let vocab = s.tok.vocab_size();
    let ws_tokens = s
        .texts
        .iter()
        .filter(|t| !t.is_empty() && t.chars().all(char::is_whitespace))
        .count();
    assert!(ws_tokens > 10, "the vocabulary has whitespace tokens");
    for seed in 100..104 {
        let mut adv = Adversary::uniform(seed, vocab);
        for (i, t) in s.texts.iter().enumerate() {
            if t.chars().any(char::is_whitespace) {
                adv.bias[i] = 5.0;
            }
        }
        let mut c = s.factory.json_schema(&nli_schema()).unwrap();
        let run = drive(s, &mut c, &mut adv, 400);
        assert!(run.ended_with_eos, "seed {seed}: {:?}", run.text);
        check_nli(&run.text);
    }
}

#[test]
fn json_object_output_is_an_object() {
    let Some(s) = setup() else { return };
    let vocab = s.tok.vocab_size();
    let mut non_empty = 0;
    let mut times = Vec::new();
    for seed in 200..206 {
        let mut adv = Adversary::uniform(seed, vocab);
        // Impatient after 150 steps: closers are preferred, so the walk ends.
        adv.late_from = 150;
        for (i, t) in s.texts.iter().enumerate() {
            if t.contains(['"', ']', '}']) {
                adv.late_bias[i] = 3.0;
            }
        }
        let mut c = s.factory.json_object().unwrap();
        let run = drive(s, &mut c, &mut adv, 1500);
        assert!(run.ended_with_eos, "seed {seed}: {:?}", run.text);
        assert!(c.is_finished());
        let canon = canonicalize_numbers(&run.text).unwrap_or_else(|e| panic!("{e}"));
        let v: Value = serde_json::from_str(&canon)
            .unwrap_or_else(|e| panic!("seed {seed}: {:?} is not JSON: {e}", run.text));
        assert!(v.is_object(), "seed {seed}: {:?}", run.text);
        assert!(!whitespace_outside_strings(&run.text), "{:?}", run.text);
        eprintln!("seed {seed}: {} tokens: {}", run.ids.len(), run.text);
        non_empty += usize::from(!v.as_object().unwrap().is_empty());
        times.extend(run.mask_times);
    }
    assert!(non_empty >= 3, "only {non_empty} of 6 objects have members");
    let total: Duration = times.iter().sum();
    eprintln!(
        "json_object mask_logits over {} steps: mean {:?}, max {:?}",
        times.len(),
        total / times.len() as u32,
        times.iter().max().unwrap()
    );
}

#[test]
fn invalid_schemas_are_grammar_errors() {
    let Some(s) = setup() else { return };
    for bad in [
        json!({"type": 12}),
        json!({"type": "integer", "minimum": 5, "maximum": 1}),
        json!({"$ref": "#/definitions/nope"}),
        json!(12),
        json!("object"),
        json!(false),
    ] {
        match s.factory.json_schema(&bad) {
            Err(ServeError::Grammar(msg)) => {
                assert!(!msg.is_empty());
                eprintln!("{bad} -> {msg}");
            }
            Err(e) => panic!("{bad}: expected a Grammar error, got {e:?}"),
            Ok(_) => panic!("{bad}: expected a Grammar error, got a constraint"),
        }
    }
    // `{"type": 12}` names the problem.
    let Err(ServeError::Grammar(msg)) = s.factory.json_schema(&json!({"type": 12})) else {
        unreachable!()
    };
    assert!(msg.contains("type") || msg.contains("12"), "{msg}");
}

fn id(s: &Setup, text: &str) -> u32 {
    let ids = s.tok.encode(text, false).unwrap();
    assert_eq!(ids.len(), 1, "{text:?} is one token: {ids:?}");
    ids[0]
}

#[test]
fn disallowed_commit_is_an_error_and_leaves_the_state() {
    let Some(s) = setup() else { return };
    let vocab = s.tok.vocab_size();
    let eos = s.tok.eos_id().unwrap();
    let hello = id(s, "Hello");
    let open = id(s, "{");
    let quote = id(s, "\"");

    // Without a mask: validated against the grammar.
    let mut c = s.factory.json_object().unwrap();
    assert!(c.commit(hello).is_err());
    assert!(c.commit(eos).is_err(), "EOS before any value");
    assert!(c.commit(vocab as u32).is_err(), "id outside the vocabulary");
    assert!(c.commit(open).is_ok(), "the state is intact after errors");

    // With a mask: the masked-out token is refused.
    let mut c = s.factory.json_object().unwrap();
    let mut logits = vec![0.0f32; vocab];
    c.mask_logits(&mut logits).unwrap();
    assert_eq!(logits[hello as usize], f32::NEG_INFINITY);
    assert!(logits[open as usize].is_finite());
    assert!(logits[eos as usize] == f32::NEG_INFINITY);
    assert!(c.commit(hello).is_err());
    c.mask_logits(&mut logits).unwrap();
    c.commit(open).unwrap();
    // After `{` a key or `}` may follow, not another `{`.
    let mut logits = vec![0.0f32; vocab];
    c.mask_logits(&mut logits).unwrap();
    assert!(logits[quote as usize].is_finite());
    assert_eq!(logits[open as usize], f32::NEG_INFINITY);
    assert!(c.commit(open).is_err());
    assert!(!c.is_finished());
}

#[test]
fn after_finishing_only_eos_is_allowed() {
    let Some(s) = setup() else { return };
    let vocab = s.tok.vocab_size();
    let eos = s.tok.eos_id().unwrap();
    let mut c = s.factory.json_object().unwrap();
    let text = r#"{"a":[1,2]}"#;
    for t in s.tok.encode(text, false).unwrap() {
        assert!(!c.is_finished());
        c.commit(t).unwrap();
    }
    assert!(c.is_finished(), "the object is complete");
    for _ in 0..3 {
        let mut logits: Vec<f32> = (0..vocab).map(|i| (i % 13) as f32).collect();
        c.mask_logits(&mut logits).unwrap();
        let finite: Vec<usize> = (0..vocab).filter(|&i| logits[i].is_finite()).collect();
        assert_eq!(finite, vec![eos as usize]);
    }
    let mut logits = vec![0.0f32; vocab];
    c.mask_logits(&mut logits).unwrap();
    assert!(c.commit(id(s, "}")).is_err());
    c.mask_logits(&mut logits).unwrap();
    c.commit(eos).unwrap();
    assert!(c.is_finished());
    // And without a mask.
    c.commit(eos).unwrap();
    assert!(c.commit(id(s, "{")).is_err());
}

/// A value that may go on (a number) allows EOS once complete; EOS then finishes it.
#[test]
fn eos_ends_an_open_ended_value() {
    let Some(s) = setup() else { return };
    let vocab = s.tok.vocab_size();
    let eos = s.tok.eos_id().unwrap();
    let mut c = s.factory.json_schema(&json!({"type": "integer"})).unwrap();
    let mut logits = vec![0.0f32; vocab];
    c.mask_logits(&mut logits).unwrap();
    assert_eq!(
        logits[eos as usize],
        f32::NEG_INFINITY,
        "no EOS before a digit"
    );
    c.commit(id(s, "4")).unwrap();
    let mut logits = vec![0.0f32; vocab];
    c.mask_logits(&mut logits).unwrap();
    assert!(logits[eos as usize].is_finite(), "EOS allowed after 4");
    assert!(logits[id(s, "2") as usize].is_finite(), "and more digits");
    assert_eq!(
        logits[id(s, ".") as usize],
        f32::NEG_INFINITY,
        "no fraction"
    );
    assert!(!c.is_finished());
    c.commit(eos).unwrap();
    assert!(c.is_finished());
    let mut logits = vec![0.0f32; vocab];
    c.mask_logits(&mut logits).unwrap();
    let finite: Vec<usize> = (0..vocab).filter(|&i| logits[i].is_finite()).collect();
    assert_eq!(finite, vec![eos as usize]);
}

/// Factories are shared across threads; constraints move into the engine thread.
#[test]
fn constraints_move_across_threads() {
    let Some(s) = setup() else { return };
    let vocab = s.tok.vocab_size();
    let handles: Vec<_> = (0..2u64)
        .map(|seed| {
            let c = s.factory.json_schema(&nli_schema()).unwrap();
            let factory = s.factory.clone();
            std::thread::spawn(move || {
                let mut c = c;
                let mut adv = Adversary::uniform(300 + seed, vocab);
                let run = drive(s, &mut c, &mut adv, 400);
                let _other = factory.json_object().unwrap();
                run.text
            })
        })
        .collect();
    for h in handles {
        check_nli(&h.join().unwrap());
    }
}

/// A model vocabulary larger than the tokenizer's: the extra ids are never allowed.
#[test]
fn padded_model_vocab() {
    let Some(s) = setup() else { return };
    let n = s.tok.vocab_size();
    let vocab = n + 64;
    let f = ConstraintFactory::new(&s.tok, vocab).unwrap();
    let mut c = f.json_schema(&nli_schema()).unwrap();
    let mut rng = StdRng::seed_from_u64(7);
    let eos = s.tok.eos_id().unwrap();
    let mut ids = Vec::new();
    for _ in 0..400 {
        // The padding ids get the highest logits.
        let mut logits: Vec<f32> = (0..vocab)
            .map(|i| rng.gen_range(-1.0f32..1.0) + if i >= n { 100.0 } else { 0.0 })
            .collect();
        c.mask_logits(&mut logits).unwrap();
        assert!(logits[n..].iter().all(|l| *l == f32::NEG_INFINITY));
        let best = logits
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .unwrap()
            .0 as u32;
        c.commit(best).unwrap();
        if best == eos {
            break;
        }
        ids.push(best);
    }
    assert!(c.is_finished());
    check_nli(&s.tok.decode(&ids, false).unwrap());
    assert!(c.commit(n as u32).is_err());
}

#[test]
fn number_check_of_the_tests_themselves() {
    assert_eq!(
        canonicalize_numbers(r#"{"a":[1,-0,2.5e3,7E-400],"b":"x1.\"2"}"#).unwrap(),
        r#"{"a":[0,0,0.5,0.5],"b":"x1.\"2"}"#
    );
    for bad in ["[01]", "[1.]", "[1e]", "[-]", "[.5]"] {
        let ok = canonicalize_numbers(bad).is_ok_and(|c| serde_json::from_str::<Value>(&c).is_ok());
        assert!(!ok, "{bad} accepted");
    }
    assert!(whitespace_outside_strings("{\"a\": 1}"));
    assert!(!whitespace_outside_strings("{\"a b\\\" c\":1}"));
}
