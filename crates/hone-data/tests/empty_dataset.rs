//! An empty dataset is an error, not a pass: `validate`, `qa` and `split` each refuse a file with
//! no examples (empty, blank lines only, a CSV without rows) with a message naming the file.

use std::path::Path;

use hone_data::qa::{self, QaOptions};
use hone_data::split::{split_file, Sizes, Strategy};
use hone_data::validate::{validate_file, ValidateOptions};
use hone_data::{Error, Format, NoProgress};

/// The error of each command on `path`.
fn errors(path: &Path, format: &Format) -> [Error; 3] {
    let out = path.with_extension("out");
    [
        validate_file(
            path,
            format,
            &ValidateOptions { max_seq_len: None },
            &NoProgress,
        )
        .expect_err("validate refuses it"),
        qa::run(path, format, None, &QaOptions::default(), None, &NoProgress)
            .expect_err("qa refuses it"),
        split_file(
            path,
            format,
            &out,
            Strategy::Random,
            &Sizes::parse("0.8,0.1,0.1").unwrap(),
            1,
            &NoProgress,
        )
        .expect_err("split refuses it"),
    ]
}

#[test]
fn files_without_examples_are_refused_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let cases: &[(&str, &str, &str)] = &[
        ("empty.jsonl", "", "no examples (the file is empty)"),
        (
            "blank.jsonl",
            "\n  \n\r\n\t\n",
            "no examples (the file has only blank lines)",
        ),
        ("empty.csv", "", "no examples (the file is empty)"),
        (
            "header.csv",
            "user,assistant\n",
            "no examples (the file has only a header)",
        ),
    ];
    for (name, body, why) in cases {
        let p = dir.path().join(name);
        std::fs::write(&p, body).unwrap();
        for e in errors(&p, &Format::for_path(&p, None)) {
            assert!(matches!(e, Error::Empty { .. }), "{name}: {e:?}");
            assert_eq!(e.to_string(), format!("{}: {why}", p.display()));
        }
    }
}

#[test]
fn one_example_is_enough_to_pass_validate() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("one.jsonl");
    std::fs::write(
        &p,
        "\n{\"instruction\": \"Say hi\", \"output\": \"hi\"}\n\n",
    )
    .unwrap();
    let rep = validate_file(
        &p,
        &Format::Jsonl,
        &ValidateOptions { max_seq_len: None },
        &NoProgress,
    )
    .unwrap();
    assert!(rep.is_ok());
    assert_eq!(rep.records, 1);
}
