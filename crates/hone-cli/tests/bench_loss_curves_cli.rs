//! `hone bench loss-curves`: several run folders' training loss on one SVG chart, and clear
//! errors for a folder that is not a run.

use std::path::Path;
use std::process::{Command, Output};

fn hone(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hone"))
        .args(args)
        .output()
        .expect("hone runs")
}

fn write_run(dir: &Path, losses: &[f64]) {
    std::fs::create_dir_all(dir).unwrap();
    let mut text = String::new();
    for (i, l) in losses.iter().enumerate() {
        text.push_str(&format!(
            "{{\"step\":{},\"epoch\":1,\"loss\":{l},\"lr\":0.001,\"grad_norm\":1.0,\"tokens_per_s\":300.0}}\n",
            i + 1
        ));
    }
    text.push_str("{\"epoch\":1,\"train_loss\":1.5,\"val_loss\":1.4}\n");
    std::fs::write(dir.join("metrics.jsonl"), text).unwrap();
}

#[test]
fn draws_each_run_and_names_it() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("run_f32"), tmp.path().join("run_bf16"));
    write_run(&a, &[3.0, 2.0, 1.5, 1.0]);
    write_run(&b, &[3.1, 2.1, 1.4]);
    let out = tmp.path().join("curves.svg");
    let o = hone(&[
        "bench",
        "loss-curves",
        a.to_str().unwrap(),
        b.to_str().unwrap(),
        "--labels",
        "f32,bf16",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        stdout.contains("f32: 4 steps, last loss 1.0000 at step 4"),
        "{stdout}"
    );
    assert!(
        stdout.contains("bf16: 3 steps, last loss 1.4000 at step 3"),
        "{stdout}"
    );
    let svg = std::fs::read_to_string(&out).unwrap();
    assert_eq!(svg.matches("<polyline").count(), 2);
    assert!(svg.contains(">f32<") && svg.contains(">bf16<"));
    // The y axis spans both runs' losses.
    assert!(svg.contains(">1.000<") && svg.contains(">3.100<"), "{svg}");
}

#[test]
fn a_folder_without_metrics_and_a_label_count_mismatch_are_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let a = tmp.path().join("run_a");
    write_run(&a, &[1.0]);
    let empty = tmp.path().join("not_a_run");
    std::fs::create_dir_all(&empty).unwrap();
    let out = tmp.path().join("c.svg");
    let o = hone(&[
        "bench",
        "loss-curves",
        a.to_str().unwrap(),
        empty.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("not_a_run/metrics.jsonl: no training steps"),
        "{err}"
    );
    assert!(!out.exists(), "nothing is written on an error");
    let o = hone(&[
        "bench",
        "loss-curves",
        a.to_str().unwrap(),
        "--labels",
        "x,y",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("--labels gives 2 labels for 1 runs"));
}
