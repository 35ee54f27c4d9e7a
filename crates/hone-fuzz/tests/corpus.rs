//! Every fuzz target over its seeds, its committed corpus (`fuzz/corpus/<target>/`, which keeps
//! every input that ever crashed a parser) and a short seeded mutation run: what CI runs of the
//! fuzzers, on stable and without libFuzzer. `HONE_FUZZ_MUTATIONS` sets the mutations per
//! target (default 300).

use std::path::{Path, PathBuf};

use hone_fuzz::mutate::{mutate, Rng};

fn corpus(name: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus")
        .join(name);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    files.sort();
    files
        .into_iter()
        .filter(|p| p.is_file())
        .map(|p| {
            let b = std::fs::read(&p).unwrap();
            (p, b)
        })
        .collect()
}

fn mutations() -> usize {
    std::env::var("HONE_FUZZ_MUTATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300)
}

fn replay(name: &str) {
    let (_, run) = hone_fuzz::TARGETS
        .iter()
        .find(|(n, _)| *n == name)
        .expect("a target");
    let mut inputs: Vec<Vec<u8>> = hone_fuzz::seeds::seeds(name);
    let files = corpus(name);
    assert!(
        !files.is_empty(),
        "fuzz/corpus/{name} is empty: the corpus of every target is committed"
    );
    for (p, b) in &files {
        eprintln!("{name}: {}", p.display());
        run(b);
        inputs.push(b.clone());
    }
    let mut rng = Rng::new(0x686f_6e65 ^ name.len() as u64);
    for i in 0..mutations() {
        let a = &inputs[rng.below(inputs.len())];
        let b = &inputs[rng.below(inputs.len())];
        let m = mutate(&mut rng, a, b);
        let r = std::panic::catch_unwind(|| run(&m));
        if r.is_err() {
            let keep = std::env::temp_dir().join(format!("hone-fuzz-{name}-{i}"));
            std::fs::write(&keep, &m).unwrap();
            panic!(
                "{name}: mutation {i} panicked; the input is in {}",
                keep.display()
            );
        }
    }
}

#[test]
fn gguf() {
    replay("gguf");
}

#[test]
fn jsonl() {
    replay("jsonl");
}

#[test]
fn train_toml() {
    replay("train_toml");
}

#[test]
fn openai() {
    replay("openai");
}

#[test]
fn contractnli() {
    replay("contractnli");
}

#[test]
fn pdf() {
    replay("pdf");
}
