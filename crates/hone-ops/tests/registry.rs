//! `registry::add` and `registry::checked_dir` on a real (tiny) adapter folder, in a SQLite
//! store: content-addressed objects shared by identical versions, and damaged or missing
//! files reported against the version that owns them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use hone_model::lora::{LoraAdapter, LoraModule, LoraSpec};
use hone_model::peft::{AdapterExtra, CONFIG_FILE, WEIGHTS_FILE};
use hone_ops::registry;
use hone_ops::store::sqlite::SqliteStore;
use hone_ops::{Error, Store};

/// A rank-2 LoRA on layer 0's `q_proj` (8 -> 8), saved as a PEFT folder.
fn tiny_adapter(dir: &Path) {
    let (r, in_f, out_f) = (2, 8, 8);
    let module = LoraModule {
        r,
        in_f,
        out_f,
        a: (0..r * in_f).map(|i| i as f32 / 16.0 - 0.5).collect(),
        b: (0..out_f * r).map(|i| 0.01 * i as f32).collect(),
    };
    let adapter = LoraAdapter {
        spec: LoraSpec {
            r,
            alpha: 4.0,
            target_modules: vec!["q_proj".into()],
            layers: vec![0],
        },
        modules: BTreeMap::from([((0, "q_proj".to_string()), module)]),
    };
    hone_model::save_adapter(dir, &adapter, "tiny-base", &AdapterExtra::default()).unwrap();
}

struct Fixture {
    _tmp: tempfile::TempDir,
    adapter: PathBuf,
    store: SqliteStore,
}

fn fixture() -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let adapter = tmp.path().join("run").join("adapter");
    tiny_adapter(&adapter);
    let store = SqliteStore::open(&tmp.path().join("reg").join("registry.db"), None).unwrap();
    Fixture {
        _tmp: tmp,
        adapter,
        store,
    }
}

/// The object folders (not the `.incoming-*` ones a write in progress uses).
fn object_folders(store: &dyn Store) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(store.objects_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| !p.file_name().unwrap().to_string_lossy().starts_with('.'))
        .collect();
    out.sort();
    out
}

#[test]
fn identical_versions_share_one_object_folder() {
    let f = fixture();
    std::fs::write(
        f.adapter.join("report.json"),
        r#"{"accuracy": 0.8, "per_label": {"yes": {"f1": 0.5}}, "model": "x"}"#,
    )
    .unwrap();
    let s: &dyn Store = &f.store;
    let v1 = registry::add(s, "nda", &f.adapter, "first", "cli").unwrap();
    let v2 = registry::add(s, "nda", &f.adapter, "again", "cli").unwrap();
    assert_eq!((v1.version, v2.version), (1, 2));
    assert_eq!(v2.meta.notes, "again");

    let (sha, _) = registry::sha256_file(&f.adapter.join(WEIGHTS_FILE)).unwrap();
    assert_eq!(v1.meta.adapter_sha256, sha);
    let names: Vec<&str> = v1.meta.files.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, [CONFIG_FILE, WEIGHTS_FILE, "report.json"]);
    assert_eq!(v1.meta.base_model, "tiny-base");
    assert_eq!(
        v1.meta.metrics,
        BTreeMap::from([
            ("accuracy".to_string(), 0.8),
            ("per_label.yes.f1".to_string(), 0.5)
        ])
    );
    assert_eq!(v1.meta.metrics_source.as_deref(), Some("report.json"));
    assert_eq!(
        Path::new(&v1.meta.source),
        f.adapter.canonicalize().unwrap()
    );

    // one folder, named by the file list, holding the files
    let dir1 = registry::checked_dir(s, &v1).unwrap();
    let dir2 = registry::checked_dir(s, &v2).unwrap();
    assert_eq!(dir1, dir2);
    assert_eq!(object_folders(s), vec![dir1.clone()]);
    assert_eq!(
        std::fs::read(dir1.join(WEIGHTS_FILE)).unwrap(),
        std::fs::read(f.adapter.join(WEIGHTS_FILE)).unwrap()
    );
    // what the store gives back loads
    let stored = s.version(&v2.reference()).unwrap().unwrap();
    assert_eq!(stored.meta, v2.meta);
    let a = registry::load(s, &stored).unwrap();
    assert_eq!(a.modules.len(), 1);
}

#[test]
fn damaged_and_missing_files_name_the_version() {
    let f = fixture();
    let s: &dyn Store = &f.store;
    let v1 = registry::add(s, "nda", &f.adapter, "", "cli").unwrap();
    let v2 = registry::add(s, "nda", &f.adapter, "", "cli").unwrap();
    let weights = registry::checked_dir(s, &v1).unwrap().join(WEIGHTS_FILE);

    // one byte flipped
    let mut bytes = std::fs::read(&weights).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x01;
    std::fs::write(&weights, &bytes).unwrap();
    for v in [&v1, &v2] {
        match registry::checked_dir(s, v) {
            Err(Error::Corrupt { version, msg }) => {
                assert_eq!(version, v.reference().to_string());
                assert!(
                    msg.contains(WEIGHTS_FILE) && msg.contains("corrupt"),
                    "{msg}"
                );
            }
            other => panic!("{}: {other:?}", v.reference()),
        }
    }
    let e = registry::load(s, &v2).unwrap_err().to_string();
    assert!(e.starts_with("nda@2: "), "{e}");

    // registering the same files again repairs the shared copy
    let v3 = registry::add(s, "nda", &f.adapter, "", "cli").unwrap();
    assert_eq!(v3.version, 3);
    for v in [&v1, &v2, &v3] {
        registry::checked_dir(s, v).unwrap();
    }

    // gone
    std::fs::remove_file(&weights).unwrap();
    match registry::checked_dir(s, &v1) {
        Err(e @ Error::Corrupt { .. }) => {
            let msg = e.to_string();
            assert!(msg.starts_with("nda@1: "), "{msg}");
            assert!(
                msg.contains("missing") && msg.contains(WEIGHTS_FILE),
                "{msg}"
            );
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_folder_without_an_adapter_is_refused() {
    let f = fixture();
    let s: &dyn Store = &f.store;
    let empty = f.adapter.parent().unwrap().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let e = registry::add(s, "nda", &empty, "", "cli").unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, Error::Invalid(_)), "{e:?}");
    assert!(msg.contains(&empty.display().to_string()), "{msg}");
    assert!(
        msg.contains("not an adapter folder") && msg.contains(CONFIG_FILE),
        "{msg}"
    );

    // a config without weights
    std::fs::copy(f.adapter.join(CONFIG_FILE), empty.join(CONFIG_FILE)).unwrap();
    let msg = registry::add(s, "nda", &empty, "", "cli")
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains(&empty.display().to_string()) && msg.contains(WEIGHTS_FILE),
        "{msg}"
    );

    // a bad name, before anything is read
    let e = registry::add(s, "n/a", &f.adapter, "", "cli").unwrap_err();
    assert!(matches!(e, Error::Invalid(_)), "{e:?}");

    // nothing was registered
    assert!(s.versions(None).unwrap().is_empty());
    assert!(s.events(None, 10).unwrap().is_empty());
}
