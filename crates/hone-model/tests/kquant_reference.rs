//! hone's Q5_0 / Q4_K / Q5_K / Q6_K dequantization equals the `gguf` Python package's
//! (`gguf.quants.dequantize`, ggml's formulas) bit for bit, on the random blocks of
//! `tests/fixtures/kquants/` (made by `scripts/fixtures/kquants.py`), and the block bytes
//! come back unchanged.

use hone_model::quant::{QFormat, QMatrix};
use std::path::PathBuf;

fn fixture(name: &str) -> Vec<u8> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/kquants")
        .join(name);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn check(fmt: QFormat) {
    let bytes = fixture(&format!("{}.bin", fmt.name()));
    let want: Vec<u32> = fixture(&format!("{}.f32", fmt.name()))
        .chunks_exact(4)
        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    let blocks = bytes.len() / fmt.ggml_block_bytes();
    assert_eq!(blocks * fmt.ggml_block_bytes(), bytes.len());
    assert_eq!(want.len(), blocks * fmt.block_values());
    // The same blocks as one row, as rows of two blocks and as rows of one block.
    for per_row in [blocks, 2, 1] {
        let rows = blocks / per_row;
        let cols = per_row * fmt.block_values();
        let q = QMatrix::from_ggml_bytes(fmt, &bytes, rows, cols).unwrap();
        assert_eq!(q.to_ggml_bytes(), bytes, "{fmt:?}: bytes do not round-trip");
        let got: Vec<u32> = q.dequantize().iter().map(|v| v.to_bits()).collect();
        for (k, (g, w)) in got.iter().zip(&want).enumerate() {
            assert_eq!(
                g,
                w,
                "{fmt:?} value {k} (block {}, index {}): {} vs gguf {}",
                k / fmt.block_values(),
                k % fmt.block_values(),
                f32::from_bits(*g),
                f32::from_bits(*w)
            );
        }
        let mut row = vec![0f32; cols];
        q.dequantize_row(rows - 1, &mut row);
        let row: Vec<u32> = row.iter().map(|v| v.to_bits()).collect();
        assert_eq!(row, want[(rows - 1) * cols..]);
    }
}

#[test]
fn q5_0_matches_gguf() {
    check(QFormat::Q5_0);
}

#[test]
fn q4_k_matches_gguf() {
    check(QFormat::Q4K);
}

#[test]
fn q5_k_matches_gguf() {
    check(QFormat::Q5K);
}

#[test]
fn q6_k_matches_gguf() {
    check(QFormat::Q6K);
}
