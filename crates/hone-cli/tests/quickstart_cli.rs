//! `hone quickstart --fast` runs the main job to the end: data, base evaluation, training,
//! calibration, evaluation, a review, and the comparison table with the report paths.

use std::process::Command;

#[test]
fn the_fast_quickstart_runs_to_the_end_and_writes_its_reports() {
    let cached = hone_model::fetch::known_model("smollm2")
        .map(|m| m.cached_path().is_file())
        .unwrap_or(false);
    if !cached {
        println!("skipped: smollm2 is not cached (hone model fetch smollm2)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("qs");
    let out = Command::new(env!("CARGO_BIN_EXE_hone"))
        .args(["quickstart", "--fast", "--out", out_dir.to_str().unwrap()])
        .output()
        .expect("hone runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "stdout: {stdout}\nstderr: {stderr}");
    for step in 1..=8 {
        assert!(
            stderr.contains(&format!("[{step}/8]")),
            "step {step}: {stderr}"
        );
    }
    // The comparison: a header, a separator and two rows with numbers in every metric cell.
    let rows: Vec<&str> = stdout.lines().filter(|l| l.starts_with("| ")).collect();
    assert_eq!(rows.len(), 3, "{stdout}");
    for row in &rows[1..] {
        let cells: Vec<&str> = row.trim_matches('|').split('|').map(str::trim).collect();
        assert_eq!(cells.len(), 8, "{row}");
        for c in &cells[1..6] {
            let v: f64 = c.parse().unwrap_or_else(|_| panic!("`{c}` in {row}"));
            assert!((0.0..=1.0).contains(&v), "{row}");
        }
    }
    for f in [
        "quickstart.html",
        "quickstart.md",
        "review.html",
        "review.md",
        "adapter/adapter_model.safetensors",
        "adapter/review.json",
        "adapter/validation.json",
        "data/split/train.jsonl",
    ] {
        assert!(out_dir.join(f).is_file(), "{f} is missing");
    }
    // Calibration weighed a TF-IDF classifier of the training documents against the model,
    // and kept it beside the adapter when its weight is above 0.
    let val: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out_dir.join("adapter/validation.json")).unwrap())
            .unwrap();
    let w = val["tfidf"]["weight"].as_f64().expect("tfidf.weight");
    assert!((0.0..=1.0).contains(&w), "{w}");
    assert_eq!(val["tfidf"]["loss_by_weight"].as_array().unwrap().len(), 11);
    assert_eq!(
        out_dir.join("adapter/tfidf.safetensors").is_file(),
        w > 0.0,
        "weight {w}"
    );
    assert!(stdout.contains("review.html"), "{stdout}");
    let review = std::fs::read_to_string(out_dir.join("review.html")).unwrap();
    assert!(review.contains("<mark"), "evidence is highlighted");
}
