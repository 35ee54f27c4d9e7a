//! Fake PyPI wheels for the fetch tests (built with the zip crate, no network): a model
//! payload, a `KnownModel` for it, wheels holding given members, and a folder's listing.
#![allow(dead_code)]

use std::io::Write;
use std::path::Path;

use hone_model::fetch::KnownModel;
use sha2::{Digest, Sha256};

/// 3 MiB of deterministic bytes from `seed`, starting like a GGUF file.
pub fn payload(seed: u64) -> Vec<u8> {
    let mut v = b"GGUF".to_vec();
    let mut x = seed;
    while v.len() < 3 << 20 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.extend_from_slice(&x.to_le_bytes());
    }
    v
}

pub fn sha_hex(data: &[u8]) -> String {
    Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A model `fake` from the wheel `fake_pkg-1.0-py3-none-any.whl`, whose hash and size are
/// `data`'s; the member, parts, checksums and licence are the caller's to set.
pub fn fake_model(data: &[u8]) -> KnownModel {
    KnownModel {
        name: "fake",
        description: "test",
        package: "fake-pkg",
        version: "1.0",
        wheel: "fake_pkg-1.0-py3-none-any.whl",
        member: "",
        file_name: "fake.gguf",
        sha256: sha_hex(data).leak(),
        size: data.len() as u64,
        parts: &[],
        sha256sums: None,
        licence: None,
    }
}

pub fn write_wheel(path: &Path, members: &[(&str, &[u8])]) {
    let mut zip = zip::ZipWriter::new(std::fs::File::create(path).unwrap());
    let opts = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    for (name, data) in members {
        zip.start_file(*name, opts).unwrap();
        zip.write_all(data).unwrap();
    }
    zip.finish().unwrap();
}

/// The names in `dir`, sorted (empty if it does not exist).
pub fn dir_names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}
