//! The schema of `run.toml` (sections and their keys, in declaration order), read off the
//! derived `Deserialize` of [`TrainConfig`]: serde hands each struct's field names to
//! `deserialize_struct`, so a probe deserializer without data collects them. No list of keys is
//! written by hand.

use std::sync::OnceLock;

use serde::de::value::{Error, MapDeserializer};
use serde::de::{self, DeserializeSeed, IntoDeserializer, MapAccess, Visitor};
use serde::Deserialize;

use super::TrainConfig;

/// Every section and its keys, in declaration order, read off the derived `Deserialize`
/// impls (serde hands each struct's field names to `deserialize_struct`).
pub fn schema() -> &'static [(&'static str, &'static [&'static str])] {
    static SCHEMA: OnceLock<Schema> = OnceLock::new();
    SCHEMA.get_or_init(|| {
        let mut out = Vec::new();
        TrainConfig::deserialize(Probe {
            out: &mut out,
            section: None,
        })
        .expect("every section has defaults");
        out
    })
}

type Schema = Vec<(&'static str, &'static [&'static str])>;

/// At the root (`section` None) it lists the sections; in a section, that section's keys.
struct Probe<'a> {
    out: &'a mut Schema,
    section: Option<&'static str>,
}

struct Sections<'a> {
    out: &'a mut Schema,
    names: &'static [&'static str],
    next: usize,
}

impl<'de> de::Deserializer<'de> for Probe<'_> {
    type Error = Error;
    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Error> {
        Err(de::Error::custom("the schema probe reads structs only"))
    }
    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        names: &'static [&'static str],
        v: V,
    ) -> Result<V::Value, Error> {
        match self.section {
            None => v.visit_map(Sections {
                out: self.out,
                names,
                next: 0,
            }),
            Some(section) => {
                self.out.push((section, names));
                v.visit_map(MapDeserializer::new(std::iter::empty::<(&str, &str)>()))
            }
        }
    }
    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes
        byte_buf option unit unit_struct newtype_struct seq tuple tuple_struct map enum
        identifier ignored_any
    }
}

impl<'de> MapAccess<'de> for Sections<'_> {
    type Error = Error;
    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, k: K) -> Result<Option<K::Value>, Error> {
        match self.names.get(self.next) {
            None => Ok(None),
            Some(name) => k.deserialize(name.into_deserializer()).map(Some),
        }
    }
    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, v: V) -> Result<V::Value, Error> {
        let section = self.names[self.next];
        self.next += 1;
        v.deserialize(Probe {
            out: self.out,
            section: Some(section),
        })
    }
}
