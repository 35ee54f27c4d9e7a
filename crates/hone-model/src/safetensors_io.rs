//! safetensors <-> f32, the one place hone converts: reading a tensor as f32 from F32, F16,
//! BF16 (or F64), and writing named f32 tensors (with optional metadata) to a file atomically.
//! Every error names the file and, where there is one, the tensor.

use std::borrow::Cow;
use std::collections::HashMap;
use std::path::Path;

use safetensors::tensor::{TensorView, View};
use safetensors::{Dtype, SafeTensors};

use crate::atomic::AtomicFile;
use crate::{Error, Result};

fn err(path: &Path, msg: String) -> Error {
    Error::Safetensors {
        path: path.to_path_buf(),
        msg,
    }
}

/// Parses the bytes of `path` as safetensors (the header; the data stays where it is).
pub fn parse<'a>(path: &Path, bytes: &'a [u8]) -> Result<SafeTensors<'a>> {
    SafeTensors::deserialize(bytes)
        .map_err(|e| err(path, format!("not a readable safetensors file: {e}")))
}

/// The metadata of the safetensors file `path` whose bytes are `bytes` (empty when it has none).
pub fn metadata(path: &Path, bytes: &[u8]) -> Result<HashMap<String, String>> {
    let (_, header) = SafeTensors::read_metadata(bytes)
        .map_err(|e| err(path, format!("not a readable safetensors file: {e}")))?;
    Ok(header.metadata().clone().unwrap_or_default())
}

/// Little-endian values of `dtype` as f32 (F32, F16, BF16 or F64; None for another dtype).
/// The GGUF reader uses it too, for its unquantized tensors.
pub fn decode_le(dtype: Dtype, d: &[u8]) -> Option<Vec<f32>> {
    Some(match dtype {
        Dtype::F32 => d
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect(),
        Dtype::F16 => d
            .chunks_exact(2)
            .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32())
            .collect(),
        Dtype::BF16 => d
            .chunks_exact(2)
            .map(|b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32())
            .collect(),
        Dtype::F64 => d
            .chunks_exact(8)
            .map(|b| f64::from_le_bytes(b.try_into().expect("8 bytes")) as f32)
            .collect(),
        _ => return None,
    })
}

/// The values of one tensor as f32 (`path` and `name` are for the error).
pub fn view_f32(path: &Path, name: &str, view: &TensorView<'_>) -> Result<Vec<f32>> {
    decode_le(view.dtype(), view.data()).ok_or_else(|| {
        err(
            path,
            format!(
                "tensor `{name}` has dtype {:?} (expected f32, f16 or bf16)",
                view.dtype()
            ),
        )
    })
}

/// The shape and f32 values of the tensor `name` of `st` (read from `path`).
pub fn tensor_f32(path: &Path, st: &SafeTensors<'_>, name: &str) -> Result<(Vec<usize>, Vec<f32>)> {
    let view = st
        .tensor(name)
        .map_err(|e| err(path, format!("tensor `{name}`: {e}")))?;
    let v = view_f32(path, name, &view)?;
    Ok((view.shape().to_vec(), v))
}

/// The f32 values of the tensor `name` of `st`, which must have `shape`.
pub fn tensor_f32_shaped(
    path: &Path,
    st: &SafeTensors<'_>,
    name: &str,
    shape: &[usize],
) -> Result<Vec<f32>> {
    let (s, v) = tensor_f32(path, st, name)?;
    if s != shape {
        return Err(err(
            path,
            format!("tensor `{name}` has shape {s:?}, expected {shape:?}"),
        ));
    }
    Ok(v)
}

/// One f32 tensor to write: its name, shape and values (row-major).
pub type F32Tensor<'a> = (String, Vec<usize>, &'a [f32]);

/// An f32 tensor as safetensors sees it; its bytes are made when they are written, so a
/// file of many tensors never holds a second copy of all of them.
struct F32View<'a> {
    shape: &'a [usize],
    data: &'a [f32],
}

impl View for F32View<'_> {
    fn dtype(&self) -> Dtype {
        Dtype::F32
    }
    fn shape(&self) -> &[usize] {
        self.shape
    }
    fn data(&self) -> Cow<'_, [u8]> {
        Cow::Owned(self.data.iter().flat_map(|x| x.to_le_bytes()).collect())
    }
    fn data_len(&self) -> usize {
        self.data.len() * 4
    }
}

fn views<'a>(path: &Path, tensors: &'a [F32Tensor<'a>]) -> Result<Vec<(&'a str, F32View<'a>)>> {
    tensors
        .iter()
        .map(|(name, shape, data)| {
            if shape.iter().product::<usize>() != data.len() {
                return Err(err(
                    path,
                    format!(
                        "tensor `{name}`: shape {shape:?} does not hold {} values",
                        data.len()
                    ),
                ));
            }
            Ok((name.as_str(), F32View { shape, data }))
        })
        .collect()
}

/// The safetensors bytes of `tensors` (f32) and `metadata` (`path` is for the error).
pub fn serialize_f32(
    path: &Path,
    tensors: &[F32Tensor<'_>],
    metadata: Option<HashMap<String, String>>,
) -> Result<Vec<u8>> {
    safetensors::serialize(views(path, tensors)?, metadata).map_err(|e| err(path, e.to_string()))
}

/// Writes `tensors` (f32) and `metadata` to `path` atomically, streaming tensor by tensor.
/// The folder is created if needed; an existing file is replaced (keeping its permissions).
pub fn write_f32(
    path: &Path,
    tensors: &[F32Tensor<'_>],
    metadata: Option<HashMap<String, String>>,
) -> Result<()> {
    let views = views(path, tensors)?;
    let f = AtomicFile::create(path)?;
    safetensors::serialize_to_file(views, metadata, f.temp_path())
        .map_err(|e| err(path, e.to_string()))?;
    f.commit()
}

/// A floating-point storage type a safetensors file can be rewritten in ([`convert`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Float {
    F32,
    F16,
    Bf16,
}

impl Float {
    fn dtype(self) -> Dtype {
        match self {
            Float::F32 => Dtype::F32,
            Float::F16 => Dtype::F16,
            Float::Bf16 => Dtype::BF16,
        }
    }

    /// `values` as little-endian bytes of this type, rounded to nearest even.
    fn encode(self, values: &[f32]) -> Vec<u8> {
        match self {
            Float::F32 => values.iter().flat_map(|x| x.to_le_bytes()).collect(),
            Float::F16 => values
                .iter()
                .flat_map(|x| half::f16::from_f32(*x).to_le_bytes())
                .collect(),
            Float::Bf16 => values
                .iter()
                .flat_map(|x| half::bf16::from_f32(*x).to_le_bytes())
                .collect(),
        }
    }
}

/// Rewrites every floating-point tensor of the safetensors file `src` as `to` into `dst`
/// (atomically), keeping names, shapes, order and metadata. A value that does not fit the
/// narrower type (an f16 overflow) is refused rather than written as infinity.
pub fn convert(src: &Path, dst: &Path, to: Float) -> Result<()> {
    let bytes = std::fs::read(src).map_err(|e| Error::io(src, e))?;
    let st = parse(src, &bytes)?;
    let meta = metadata(src, &bytes)?;
    let mut names: Vec<(usize, String)> = Vec::new();
    {
        let (_, header) = SafeTensors::read_metadata(&bytes)
            .map_err(|e| err(src, format!("not a readable safetensors file: {e}")))?;
        for (name, info) in header.tensors() {
            names.push((info.data_offsets.0, name));
        }
    }
    names.sort();
    let mut out: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::with_capacity(names.len());
    for (_, name) in names {
        let view = st
            .tensor(&name)
            .map_err(|e| err(src, format!("tensor `{name}`: {e}")))?;
        let values = view_f32(src, &name, &view)?;
        if let Some(bad) = values.iter().find(|v| v.is_finite() && !to.holds(**v)) {
            return Err(err(
                src,
                format!("tensor `{name}`: {bad} does not fit {:?}", to.dtype()),
            ));
        }
        out.push((name, view.shape().to_vec(), to.encode(&values)));
    }
    let views: Vec<(&str, TensorView<'_>)> = out
        .iter()
        .map(|(n, shape, data)| {
            TensorView::new(to.dtype(), shape.clone(), data)
                .map(|v| (n.as_str(), v))
                .map_err(|e| err(dst, format!("tensor `{n}`: {e}")))
        })
        .collect::<Result<_>>()?;
    let f = AtomicFile::create(dst)?;
    safetensors::serialize_to_file(views, (!meta.is_empty()).then_some(meta), f.temp_path())
        .map_err(|e| err(dst, e.to_string()))?;
    f.commit()
}

impl Float {
    /// Whether a finite `v` stays finite in this type.
    fn holds(self, v: f32) -> bool {
        match self {
            Float::F16 => half::f16::from_f32(v).is_finite(),
            Float::F32 | Float::Bf16 => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_f32_with_metadata_and_reads_half_precision() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("t.safetensors");
        let a: Vec<f32> = (0..6).map(|i| i as f32 * 0.25 - 1.0).collect();
        let b = [3.5f32, -2.0];
        let meta = HashMap::from([("format".to_string(), "pt".to_string())]);
        let tensors: Vec<F32Tensor> = vec![
            ("a".into(), vec![2, 3], &a[..]),
            ("b".into(), vec![2], &b[..]),
        ];
        write_f32(&p, &tensors, Some(meta.clone())).unwrap();
        let bytes = std::fs::read(&p).unwrap();
        // Streaming to a file and serializing in memory give the same bytes.
        assert_eq!(
            bytes,
            serialize_f32(&p, &tensors, Some(meta.clone())).unwrap()
        );
        let st = parse(&p, &bytes).unwrap();
        assert_eq!(tensor_f32(&p, &st, "a").unwrap(), (vec![2, 3], a.clone()));
        assert_eq!(tensor_f32_shaped(&p, &st, "b", &[2]).unwrap(), b);
        assert_eq!(metadata(&p, &bytes).unwrap(), meta);
        assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 1);

        let f16: Vec<u8> = a
            .iter()
            .flat_map(|x| half::f16::from_f32(*x).to_le_bytes())
            .collect();
        let bf16: Vec<u8> = a
            .iter()
            .flat_map(|x| half::bf16::from_f32(*x).to_le_bytes())
            .collect();
        let bytes = safetensors::serialize(
            [
                ("h", TensorView::new(Dtype::F16, vec![6], &f16).unwrap()),
                ("g", TensorView::new(Dtype::BF16, vec![6], &bf16).unwrap()),
            ],
            None,
        )
        .unwrap();
        let st = parse(&p, &bytes).unwrap();
        // These values are exact in both half formats.
        assert_eq!(tensor_f32(&p, &st, "h").unwrap().1, a);
        assert_eq!(tensor_f32(&p, &st, "g").unwrap().1, a);
        assert!(metadata(&p, &bytes).unwrap().is_empty());
    }

    #[test]
    fn convert_rewrites_every_tensor_in_the_narrower_type_and_keeps_the_rest() {
        let d = tempfile::tempdir().unwrap();
        let src = d.path().join("a.safetensors");
        let a: Vec<f32> = (0..12).map(|i| (i as f32 - 5.3) * 0.0371).collect();
        let b = [1.0f32 / 3.0, -7.25];
        let meta = HashMap::from([("format".to_string(), "pt".to_string())]);
        let tensors: Vec<F32Tensor> = vec![
            ("z.lora_A.weight".into(), vec![3, 4], &a[..]),
            ("a.lora_B.weight".into(), vec![2, 1], &b[..]),
        ];
        write_f32(&src, &tensors, Some(meta.clone())).unwrap();
        for to in [Float::Bf16, Float::F16, Float::F32] {
            let dst = d.path().join(format!("{to:?}.safetensors"));
            convert(&src, &dst, to).unwrap();
            let bytes = std::fs::read(&dst).unwrap();
            assert_eq!(metadata(&dst, &bytes).unwrap(), meta);
            let st = parse(&dst, &bytes).unwrap();
            assert_eq!(st.tensor("z.lora_A.weight").unwrap().dtype(), to.dtype());
            let (shape, got) = tensor_f32(&dst, &st, "z.lora_A.weight").unwrap();
            assert_eq!(shape, vec![3, 4]);
            // Each value is the nearest of the type: within half a unit in the last place.
            let ulp = match to {
                Float::Bf16 => 1.0 / 128.0,
                Float::F16 => 1.0 / 1024.0,
                Float::F32 => 0.0,
            };
            for (g, w) in got.iter().zip(&a) {
                assert!(
                    (g - w).abs() <= w.abs() * ulp / 2.0,
                    "{to:?}: {g} against {w}"
                );
            }
            let size = if to == Float::F32 { 4 } else { 2 };
            assert!(
                bytes.len() < 200 + 14 * size,
                "{to:?}: {} bytes",
                bytes.len()
            );
        }
        // f16 cannot hold 1e6: refused, nothing written.
        let big = [1.0e6f32];
        write_f32(&src, &[("w".into(), vec![1], &big[..])], None).unwrap();
        let dst = d.path().join("big.safetensors");
        let e = convert(&src, &dst, Float::F16).unwrap_err().to_string();
        assert!(e.contains("`w`") && e.contains("does not fit"), "{e}");
        assert!(!dst.exists());
        convert(&src, &dst, Float::Bf16).unwrap();
    }

    #[test]
    fn errors_name_the_file_and_the_tensor() {
        let p = Path::new("dir/w.safetensors");
        let e = parse(p, b"garbage").unwrap_err().to_string();
        assert!(
            e.contains("w.safetensors") && e.contains("not a readable safetensors file"),
            "{e}"
        );
        let ints = [1u8, 0, 0, 0];
        let bytes = safetensors::serialize(
            [("i", TensorView::new(Dtype::I32, vec![1], &ints).unwrap())],
            None,
        )
        .unwrap();
        let st = parse(p, &bytes).unwrap();
        let e = tensor_f32(p, &st, "i").unwrap_err().to_string();
        assert!(
            e.contains("w.safetensors") && e.contains("`i` has dtype I32"),
            "{e}"
        );
        let e = tensor_f32(p, &st, "nope").unwrap_err().to_string();
        assert!(e.contains("w.safetensors") && e.contains("`nope`"), "{e}");
        let x = [1f32, 2.0, 3.0];
        let bytes = serialize_f32(p, &[("x".into(), vec![3], &x[..])], None).unwrap();
        let st = parse(p, &bytes).unwrap();
        let e = tensor_f32_shaped(p, &st, "x", &[1, 3])
            .unwrap_err()
            .to_string();
        assert!(e.contains("`x` has shape [3], expected [1, 3]"), "{e}");
        let e = serialize_f32(p, &[("x".into(), vec![2, 2], &x[..])], None)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("`x`: shape [2, 2] does not hold 3 values"),
            "{e}"
        );
    }
}
