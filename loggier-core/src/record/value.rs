//! The caller-side form of one context field (crate-private).
//!
//! [`Event::field`](crate::Event::field) used to turn every value into a
//! `serde_json::Value` on the caller's thread (a map insert with SipHash, an
//! allocation per key and per string). Scalars now go into a [`FieldValue`] — an
//! integer, a float, a bool or a short string kept inline — through a small
//! [`serde::Serializer`]; only nested values (maps, sequences, structs) are built as a
//! `serde_json::Value`. The worker moves the fields into the record's
//! [`ContextFields`](crate::ContextFields) (a `'static` key stays borrowed) with
//! [`FieldValue::into_json`], which gives exactly what `serde_json::to_value` would
//! have given.

use std::borrow::Cow;
use std::fmt;

use serde::ser::{self, Impossible, Serialize};
use serde_json::Value;

/// Longest string (bytes) kept inline in a [`FieldValue`], without an allocation.
pub(crate) const INLINE_STR_BYTES: usize = 22;

/// One field value as captured on the caller's thread.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum FieldValue {
    /// `null`: unit, `None`, or a value that could not be serialized.
    Null,
    Bool(bool),
    I64(i64),
    U64(u64),
    F64(f64),
    /// `f32`, converted to JSON exactly as `serde_json::to_value` converts it.
    F32(f32),
    /// A string of at most [`INLINE_STR_BYTES`] bytes, stored in place.
    Inline(InlineStr),
    Str(String),
    /// A unit enum variant's name.
    Static(&'static str),
    /// Anything nested (maps, sequences, structs, …), or a value given as JSON.
    Json(Box<Value>),
}

/// A short UTF-8 string stored in place (no heap allocation). Kept as an
/// `ArrayString`, which knows its bytes came from a `&str`: reading it back on the
/// worker does not validate them as UTF-8 again.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct InlineStr(arrayvec::ArrayString<INLINE_STR_BYTES>);

impl InlineStr {
    fn new(s: &str) -> Option<Self> {
        arrayvec::ArrayString::from(s).ok().map(InlineStr)
    }

    pub(crate) fn as_str(&self) -> &str {
        self.0.as_str()
    }
}

impl fmt::Debug for InlineStr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl FieldValue {
    /// Captures `value`: scalars directly, anything nested through
    /// `serde_json::to_value`; `Null` when it cannot be serialized (as before).
    pub(crate) fn capture<T: Serialize + ?Sized>(value: &T) -> FieldValue {
        match value.serialize(Capture) {
            Ok(v) => v,
            Err(Fallback) => match serde_json::to_value(value) {
                Ok(v) => FieldValue::Json(Box::new(v)),
                Err(_) => FieldValue::Null,
            },
        }
    }

    /// A string value, inline when short.
    pub(crate) fn string(s: &str) -> FieldValue {
        match InlineStr::new(s) {
            Some(i) => FieldValue::Inline(i),
            None => FieldValue::Str(s.to_string()),
        }
    }

    /// The JSON value `serde_json::to_value` gives for the captured value.
    pub(crate) fn into_json(self) -> Value {
        match self {
            FieldValue::Null => Value::Null,
            FieldValue::Bool(b) => Value::Bool(b),
            FieldValue::I64(i) => Value::from(i),
            FieldValue::U64(u) => Value::from(u),
            FieldValue::F64(f) => Value::from(f),
            FieldValue::F32(f) => Value::from(f),
            FieldValue::Inline(s) => Value::String(s.as_str().to_string()),
            FieldValue::Str(s) => Value::String(s),
            FieldValue::Static(s) => Value::String(s.to_string()),
            FieldValue::Json(v) => *v,
        }
    }
}

/// "Not a scalar: use `serde_json::to_value`."
#[derive(Debug)]
pub(crate) struct Fallback;

impl fmt::Display for Fallback {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("not a scalar")
    }
}

impl std::error::Error for Fallback {}

impl ser::Error for Fallback {
    fn custom<T: fmt::Display>(_msg: T) -> Self {
        Fallback
    }
}

/// Serializes scalars into a [`FieldValue`]; everything else is [`Fallback`].
struct Capture;

type Nope = Impossible<FieldValue, Fallback>;

impl ser::Serializer for Capture {
    type Ok = FieldValue;
    type Error = Fallback;
    type SerializeSeq = Nope;
    type SerializeTuple = Nope;
    type SerializeTupleStruct = Nope;
    type SerializeTupleVariant = Nope;
    type SerializeMap = Nope;
    type SerializeStruct = Nope;
    type SerializeStructVariant = Nope;

    fn serialize_bool(self, v: bool) -> Result<FieldValue, Fallback> {
        Ok(FieldValue::Bool(v))
    }
    fn serialize_i8(self, v: i8) -> Result<FieldValue, Fallback> {
        Ok(FieldValue::I64(v.into()))
    }
    fn serialize_i16(self, v: i16) -> Result<FieldValue, Fallback> {
        Ok(FieldValue::I64(v.into()))
    }
    fn serialize_i32(self, v: i32) -> Result<FieldValue, Fallback> {
        Ok(FieldValue::I64(v.into()))
    }
    fn serialize_i64(self, v: i64) -> Result<FieldValue, Fallback> {
        Ok(FieldValue::I64(v))
    }
    fn serialize_u8(self, v: u8) -> Result<FieldValue, Fallback> {
        Ok(FieldValue::U64(v.into()))
    }
    fn serialize_u16(self, v: u16) -> Result<FieldValue, Fallback> {
        Ok(FieldValue::U64(v.into()))
    }
    fn serialize_u32(self, v: u32) -> Result<FieldValue, Fallback> {
        Ok(FieldValue::U64(v.into()))
    }
    fn serialize_u64(self, v: u64) -> Result<FieldValue, Fallback> {
        Ok(FieldValue::U64(v))
    }
    // 128-bit integers: whatever serde_json decides (range checks, errors).
    fn serialize_i128(self, _v: i128) -> Result<FieldValue, Fallback> {
        Err(Fallback)
    }
    fn serialize_u128(self, _v: u128) -> Result<FieldValue, Fallback> {
        Err(Fallback)
    }
    fn serialize_f32(self, v: f32) -> Result<FieldValue, Fallback> {
        Ok(FieldValue::F32(v))
    }
    fn serialize_f64(self, v: f64) -> Result<FieldValue, Fallback> {
        Ok(FieldValue::F64(v))
    }
    fn serialize_char(self, v: char) -> Result<FieldValue, Fallback> {
        let mut b = [0u8; 4];
        Ok(FieldValue::string(v.encode_utf8(&mut b)))
    }
    fn serialize_str(self, v: &str) -> Result<FieldValue, Fallback> {
        Ok(FieldValue::string(v))
    }
    fn serialize_bytes(self, _v: &[u8]) -> Result<FieldValue, Fallback> {
        Err(Fallback)
    }
    fn serialize_none(self) -> Result<FieldValue, Fallback> {
        Ok(FieldValue::Null)
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<FieldValue, Fallback> {
        value.serialize(self)
    }
    fn serialize_unit(self) -> Result<FieldValue, Fallback> {
        Ok(FieldValue::Null)
    }
    fn serialize_unit_struct(self, _name: &'static str) -> Result<FieldValue, Fallback> {
        Ok(FieldValue::Null)
    }
    fn serialize_unit_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
    ) -> Result<FieldValue, Fallback> {
        Ok(FieldValue::Static(variant))
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        value: &T,
    ) -> Result<FieldValue, Fallback> {
        value.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _value: &T,
    ) -> Result<FieldValue, Fallback> {
        Err(Fallback)
    }
    fn serialize_seq(self, _len: Option<usize>) -> Result<Nope, Fallback> {
        Err(Fallback)
    }
    fn serialize_tuple(self, _len: usize) -> Result<Nope, Fallback> {
        Err(Fallback)
    }
    fn serialize_tuple_struct(self, _name: &'static str, _len: usize) -> Result<Nope, Fallback> {
        Err(Fallback)
    }
    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _len: usize,
    ) -> Result<Nope, Fallback> {
        Err(Fallback)
    }
    fn serialize_map(self, _len: Option<usize>) -> Result<Nope, Fallback> {
        Err(Fallback)
    }
    fn serialize_struct(self, _name: &'static str, _len: usize) -> Result<Nope, Fallback> {
        Err(Fallback)
    }
    fn serialize_struct_variant(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _len: usize,
    ) -> Result<Nope, Fallback> {
        Err(Fallback)
    }
    fn collect_str<T: fmt::Display + ?Sized>(self, value: &T) -> Result<FieldValue, Fallback> {
        Ok(FieldValue::string(&value.to_string()))
    }
}

/// A field key: `&'static str` from the macros (no allocation), or owned.
pub(crate) type FieldKey = Cow<'static, str>;

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn same_as_to_value<T: Serialize + ?Sized>(v: &T) {
        let want = serde_json::to_value(v).unwrap_or(Value::Null);
        let got = FieldValue::capture(v).into_json();
        assert_eq!(got, want, "{want}");
        // Same bytes once printed (f32 precision, integer signs).
        assert_eq!(got.to_string(), want.to_string());
    }

    #[derive(serde::Serialize)]
    enum Plan {
        Pro,
        Team(u8),
    }

    #[derive(serde::Serialize)]
    struct Id(u32);

    #[derive(serde::Serialize)]
    struct User {
        name: &'static str,
        age: u8,
    }

    #[test]
    fn every_scalar_and_nested_value_matches_serde_json_to_value() {
        same_as_to_value(&true);
        same_as_to_value(&-5i8);
        same_as_to_value(&i64::MIN);
        same_as_to_value(&42i32);
        same_as_to_value(&u64::MAX);
        same_as_to_value(&7u16);
        same_as_to_value(&1.5f64);
        same_as_to_value(&1.1f32);
        same_as_to_value(&f64::NAN);
        same_as_to_value(&f32::INFINITY);
        same_as_to_value(&'é');
        same_as_to_value("short");
        same_as_to_value("naïve ✓ ünïcode");
        same_as_to_value("a string longer than twenty-two bytes, kept on the heap");
        same_as_to_value(&String::from("exactly 22 bytes long."));
        same_as_to_value(&());
        same_as_to_value(&None::<u8>);
        same_as_to_value(&Some("x"));
        same_as_to_value(&Plan::Pro);
        same_as_to_value(&Plan::Team(3));
        same_as_to_value(&Id(9));
        same_as_to_value(&User {
            name: "ann",
            age: 30,
        });
        same_as_to_value(&vec![1, 2, 3]);
        same_as_to_value(&(1, "two"));
        same_as_to_value(&json!({"a": {"b": [1, null]}}));
        same_as_to_value(&1u128);
        same_as_to_value(&-1i128);
        same_as_to_value(&b"bytes"[..]);
        let mut m = std::collections::BTreeMap::new();
        m.insert(1, "non-string key");
        same_as_to_value(&m);
    }

    #[test]
    fn short_strings_stay_inline() {
        assert!(matches!(
            FieldValue::capture("/orders/{id}"),
            FieldValue::Inline(_)
        ));
        assert!(matches!(
            FieldValue::capture("exactly 22 bytes long."),
            FieldValue::Inline(_)
        ));
        assert!(matches!(
            FieldValue::capture("twenty-three bytes long"),
            FieldValue::Str(_)
        ));
        assert!(matches!(FieldValue::capture(&42), FieldValue::I64(42)));
        assert!(std::mem::size_of::<FieldValue>() <= 32);
    }
}
