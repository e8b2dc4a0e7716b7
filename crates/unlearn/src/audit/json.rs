//! An order-keeping JSON value: how an audit carries one protocol's rows without knowing their
//! type. `serde_json::Value` sorts object keys (this crate does not turn on serde_json's
//! `preserve_order`, which would change the key order of every other JSON file it writes), so a
//! protocol's rows held as a `Value` would be written to `audit.json` with their fields in
//! another order than the row type declares. [`Json`] keeps the order, and numbers as
//! `serde_json::Number` (shortest round-trip form), so that rows written through it are the
//! bytes the row type itself would write.

use crate::error::{Error, Result};
use serde::de::{MapAccess, SeqAccess, Visitor};
use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A JSON value whose objects keep their keys in the order they were written.
#[derive(Debug, Clone, PartialEq)]
pub enum Json {
    /// `null`.
    Null,
    /// `true` or `false`.
    Bool(bool),
    /// A number, as serde_json holds it.
    Number(serde_json::Number),
    /// A string.
    String(String),
    /// An array.
    Array(Vec<Json>),
    /// An object, keys in order.
    Object(Vec<(String, Json)>),
}

impl Json {
    /// `value` as an order-keeping JSON value.
    pub fn from_serialize<T: Serialize + ?Sized>(value: &T) -> Result<Json> {
        let text = serde_json::to_string(value)
            .map_err(|e| Error::invalid(format!("cannot encode audit rows: {e}")))?;
        serde_json::from_str(&text)
            .map_err(|e| Error::invalid(format!("cannot read back audit rows: {e}")))
    }

    /// The number of elements of an array (0 for anything else).
    pub fn len(&self) -> usize {
        match self {
            Json::Array(items) => items.len(),
            _ => 0,
        }
    }

    /// Whether the value is an empty array (or not an array).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Serialize for Json {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        match self {
            Json::Null => serializer.serialize_unit(),
            Json::Bool(value) => serializer.serialize_bool(*value),
            Json::Number(number) => number.serialize(serializer),
            Json::String(text) => serializer.serialize_str(text),
            Json::Array(items) => {
                let mut seq = serializer.serialize_seq(Some(items.len()))?;
                for item in items {
                    seq.serialize_element(item)?;
                }
                seq.end()
            }
            Json::Object(entries) => {
                let mut map = serializer.serialize_map(Some(entries.len()))?;
                for (key, value) in entries {
                    map.serialize_entry(key, value)?;
                }
                map.end()
            }
        }
    }
}

struct JsonVisitor;

impl<'de> Visitor<'de> for JsonVisitor {
    type Value = Json;

    fn expecting(&self, formatter: &mut std::fmt::Formatter) -> std::fmt::Result {
        formatter.write_str("any JSON value")
    }

    fn visit_unit<E>(self) -> std::result::Result<Json, E> {
        Ok(Json::Null)
    }

    fn visit_none<E>(self) -> std::result::Result<Json, E> {
        Ok(Json::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> std::result::Result<Json, D::Error> {
        Json::deserialize(d)
    }

    fn visit_bool<E>(self, value: bool) -> std::result::Result<Json, E> {
        Ok(Json::Bool(value))
    }

    fn visit_i64<E>(self, value: i64) -> std::result::Result<Json, E> {
        Ok(Json::Number(value.into()))
    }

    fn visit_u64<E>(self, value: u64) -> std::result::Result<Json, E> {
        Ok(Json::Number(value.into()))
    }

    fn visit_f64<E>(self, value: f64) -> std::result::Result<Json, E> {
        Ok(serde_json::Number::from_f64(value).map_or(Json::Null, Json::Number))
    }

    fn visit_str<E>(self, value: &str) -> std::result::Result<Json, E> {
        Ok(Json::String(value.to_string()))
    }

    fn visit_string<E>(self, value: String) -> std::result::Result<Json, E> {
        Ok(Json::String(value))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> std::result::Result<Json, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Json::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<Json, A::Error> {
        let mut entries = Vec::new();
        while let Some((key, value)) = map.next_entry::<String, Json>()? {
            entries.push((key, value));
        }
        Ok(Json::Object(entries))
    }
}

impl<'de> Deserialize<'de> for Json {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Json, D::Error> {
        deserializer.deserialize_any(JsonVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize)]
    struct Row {
        zeta: f64,
        alpha: Option<f64>,
        #[serde(skip_serializing_if = "Option::is_none")]
        skipped: Option<String>,
        middle: Vec<(f64, f64)>,
        count: usize,
        negative: i64,
    }

    #[test]
    fn rows_through_json_are_the_bytes_the_row_type_writes() {
        let rows = vec![
            Row {
                zeta: 0.1 + 0.2,
                alpha: None,
                skipped: None,
                middle: vec![(1e-300, 123456.789)],
                count: 7,
                negative: -3,
            },
            Row {
                zeta: f64::NAN,
                alpha: Some(2.5e17),
                skipped: Some("x".into()),
                middle: Vec::new(),
                count: 0,
                negative: i64::MIN,
            },
        ];
        let json = Json::from_serialize(&rows).unwrap();
        assert_eq!(json.len(), 2);
        assert_eq!(
            serde_json::to_string_pretty(&json).unwrap(),
            serde_json::to_string_pretty(&rows).unwrap()
        );
        assert_eq!(
            serde_json::to_string(&json).unwrap(),
            serde_json::to_string(&rows).unwrap()
        );
    }
}
