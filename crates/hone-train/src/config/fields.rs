//! Readers for the values of `run.toml`, one per kind of key (a positive number, a count, a
//! path, a choice, the LoRA targets and layers). Each takes the TOML value as written and gives
//! the field or a message; the config names the key (via `serde_path_to_error`).

use std::path::{Path, PathBuf};

use hone_model::llama::MODULES;
use serde::de::{self, DeserializeOwned, Deserializer};
use serde::{Deserialize, Serialize, Serializer};
use toml::Value;

use super::LayerSelection;

pub(super) fn type_name(v: &Value) -> &'static str {
    match v {
        Value::String(_) => "a string",
        Value::Integer(_) => "an integer",
        Value::Float(_) => "a number",
        Value::Boolean(_) => "a boolean",
        Value::Datetime(_) => "a date",
        Value::Array(_) => "a list",
        Value::Table(_) => "a table",
    }
}

fn wrong<E: de::Error>(want: &str, v: &Value) -> E {
    E::custom(format!("expected {want}, got {} ({v})", type_name(v)))
}

pub(super) fn string<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    match Value::deserialize(d)? {
        Value::String(s) => Ok(s),
        v => Err(wrong("a string", &v)),
    }
}

pub(super) fn non_empty<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let s = string(d)?;
    if s.trim().is_empty() {
        return Err(de::Error::custom("must not be empty"));
    }
    Ok(s)
}

/// A path as written; made relative to the config file's folder in [`TrainConfig::parse`].
pub(super) fn path<'de, D: Deserializer<'de>>(d: D) -> Result<PathBuf, D::Error> {
    non_empty(d).map(PathBuf::from)
}

pub(super) fn some_path<'de, D: Deserializer<'de>>(d: D) -> Result<Option<PathBuf>, D::Error> {
    path(d).map(Some)
}

pub(super) fn lossy_path<S: Serializer>(p: &Path, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&p.to_string_lossy())
}

pub(super) fn lossy_some_path<S: Serializer>(p: &Option<PathBuf>, s: S) -> Result<S::Ok, S::Error> {
    lossy_path(p.as_deref().unwrap_or(Path::new("")), s)
}

/// A unit enum by its lowercase serde name, any case, naming the choices when unknown.
pub(super) fn choice<'de, D: Deserializer<'de>, T: DeserializeOwned>(d: D) -> Result<T, D::Error> {
    /// Keeps the variant names serde reports for an unknown variant.
    #[derive(Debug)]
    struct Variants(&'static [&'static str]);
    impl std::fmt::Display for Variants {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "{:?}", self.0)
        }
    }
    impl std::error::Error for Variants {}
    impl de::Error for Variants {
        fn custom<M: std::fmt::Display>(_: M) -> Self {
            Variants(&[])
        }
        fn unknown_variant(_: &str, expected: &'static [&'static str]) -> Self {
            Variants(expected)
        }
    }
    let s = string(d)?;
    let lower = s.to_ascii_lowercase();
    T::deserialize(de::value::StrDeserializer::<Variants>::new(&lower)).map_err(|e| {
        let names: Vec<String> = e.0.iter().map(|n| format!("\"{n}\"")).collect();
        de::Error::custom(format!(
            "unknown value \"{s}\" (one of {})",
            names.join(", ")
        ))
    })
}

pub(super) fn flag<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    match Value::deserialize(d)? {
        Value::Boolean(b) => Ok(b),
        v => Err(wrong("true or false", &v)),
    }
}

pub(super) fn non_negative_int<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    match Value::deserialize(d)? {
        Value::Integer(i) if i >= 0 => Ok(i as u64),
        Value::Integer(i) => Err(de::Error::custom(format!("must not be negative, got {i}"))),
        v => Err(wrong("an integer", &v)),
    }
}

pub(super) fn at_least<'de, const MIN: usize, D: Deserializer<'de>>(
    d: D,
) -> Result<usize, D::Error> {
    let v = non_negative_int(d)?;
    let v = usize::try_from(v).map_err(|_| de::Error::custom(format!("{v} is too large")))?;
    if v < MIN {
        return Err(de::Error::custom(format!(
            "must be at least {MIN}, got {v}"
        )));
    }
    Ok(v)
}

pub(super) fn some_at_least_one<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<usize>, D::Error> {
    at_least::<1, D>(d).map(Some)
}

/// A finite number (integers accepted) for which `ok` holds, else "must be {rule}".
fn number<'de, D: Deserializer<'de>>(
    d: D,
    ok: fn(f64) -> bool,
    rule: &str,
) -> Result<f64, D::Error> {
    let x = match Value::deserialize(d)? {
        Value::Float(f) if f.is_finite() => f,
        Value::Integer(i) => i as f64,
        v => return Err(wrong("a finite number", &v)),
    };
    if !ok(x) {
        return Err(de::Error::custom(format!("must be {rule}, got {x}")));
    }
    // Some of these are kept as f32 (lora.alpha, dropout): a value that would become
    // infinite there is refused here, or the run's echoed config would not read back.
    if x.abs() > f32::MAX as f64 {
        return Err(de::Error::custom(format!(
            "must be at most {:e} in size, got {x:e}",
            f32::MAX
        )));
    }
    Ok(x)
}

pub(super) fn positive<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    number(d, |x| x > 0.0, "> 0")
}

pub(super) fn non_negative<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    number(d, |x| x >= 0.0, ">= 0")
}

pub(super) fn zero_is_off<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    number(d, |x| x >= 0.0, ">= 0 (0 = off)")
}

pub(super) fn fraction<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    number(d, |x| (0.0..=1.0).contains(&x), "in [0, 1]")
}

pub(super) fn below_one<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    number(d, |x| (0.0..1.0).contains(&x), "in [0, 1)")
}

pub(super) fn positive_f32<'de, D: Deserializer<'de>>(d: D) -> Result<f32, D::Error> {
    positive(d).map(|x| x as f32)
}

pub(super) fn below_one_f32<'de, D: Deserializer<'de>>(d: D) -> Result<f32, D::Error> {
    below_one(d).map(|x| x as f32)
}

/// An f32 written with its shortest decimal (`0.05`, not `0.05000000074505806`).
pub(super) fn short_f32<S: Serializer>(x: &f32, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(format!("{x}").parse::<f64>().unwrap_or(*x as f64))
}

/// Module names or `"all-linear"`, expanded, without duplicates.
pub(super) fn target_modules<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    let names: Vec<String> = match Value::deserialize(d)? {
        Value::String(s) => vec![s],
        Value::Array(a) => a
            .into_iter()
            .map(|v| match v {
                Value::String(s) => Ok(s),
                other => Err(wrong("a list of module names", &other)),
            })
            .collect::<Result<_, D::Error>>()?,
        v => return Err(wrong("a list of module names or \"all-linear\"", &v)),
    };
    if names.is_empty() {
        return Err(de::Error::custom("must name at least one module"));
    }
    let mut out: Vec<String> = Vec::new();
    for n in names {
        let add: Vec<&str> = if n == "all-linear" {
            MODULES.to_vec()
        } else if MODULES.contains(&n.as_str()) {
            vec![n.as_str()]
        } else {
            return Err(de::Error::custom(format!(
                "unknown module \"{n}\" (known: {}, or \"all-linear\")",
                MODULES.join(", ")
            )));
        };
        for m in add {
            if !out.iter().any(|o| o == m) {
                out.push(m.to_string());
            }
        }
    }
    Ok(out)
}

impl<'de> Deserialize<'de> for LayerSelection {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let bad = |msg: String| <D::Error as de::Error>::custom(msg);
        let index = |i: i64| -> Result<usize, D::Error> {
            usize::try_from(i).map_err(|_| bad(format!("layer index {i} is negative")))
        };
        match Value::deserialize(d)? {
            Value::Integer(i) => Ok(LayerSelection::List(vec![index(i)?])),
            Value::Array(a) => {
                if a.is_empty() {
                    return Err(bad("the list of layers is empty".into()));
                }
                let mut v = Vec::with_capacity(a.len());
                for x in a {
                    match x {
                        Value::Integer(i) => v.push(index(i)?),
                        other => return Err(wrong("a list of layer indices", &other)),
                    }
                }
                v.sort_unstable();
                v.dedup();
                Ok(LayerSelection::List(v))
            }
            Value::String(s) => {
                let s = s.trim();
                if s.eq_ignore_ascii_case("all") {
                    return Ok(LayerSelection::All);
                }
                let num = |t: &str| -> Result<usize, D::Error> {
                    t.trim().parse::<usize>().map_err(|_| {
                        bad(format!(
                            "\"{s}\" is not \"all\", a range like \"22-29\" or a list like \"1,2,5\""
                        ))
                    })
                };
                if let Some((a, b)) = s.split_once('-') {
                    let (a, b) = (num(a)?, num(b)?);
                    if a > b {
                        return Err(bad(format!(
                            "range \"{s}\" is empty: its start is after its end"
                        )));
                    }
                    Ok(LayerSelection::Range(a, b))
                } else {
                    let mut v = s.split(',').map(num).collect::<Result<Vec<_>, _>>()?;
                    v.sort_unstable();
                    v.dedup();
                    Ok(LayerSelection::List(v))
                }
            }
            v => Err(wrong("\"all\", a range like \"22-29\" or a list", &v)),
        }
    }
}

impl Serialize for LayerSelection {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            LayerSelection::All => s.serialize_str("all"),
            LayerSelection::Range(a, b) => s.serialize_str(&format!("{a}-{b}")),
            LayerSelection::List(v) => v.serialize(s),
        }
    }
}
