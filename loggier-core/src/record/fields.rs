//! [`ContextFields`]: the context of one [`Record`](super::Record).
//!
//! A record's context used to be a `serde_json::Map`: every key a fresh `String`,
//! every record a hash table and an entry vector, keys hashed with SipHash on every
//! insert. A record carries a handful of fields, most of them under `&'static` keys
//! from the logging macros, so the context is now a plain vector of
//! (`Cow<'static, str>` key, `serde_json::Value`) pairs: a static key is borrowed,
//! the whole context is one allocation, and a lookup compares a few short strings.
//! Past [`INDEX_FROM`] fields (contexts a relay receives can be large) a hash index
//! of the keys is kept as well, so building a context stays linear.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;

use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::Value;

use super::Fields;

/// The context fields of a [`Record`](super::Record), in insertion order.
///
/// Each key appears once: [`insert`](ContextFields::insert) overwrites the value of
/// an existing key in place (the key keeps its first position), as a
/// `serde_json::Map` with `preserve_order` does. Keys are `Cow<'static, str>`, so
/// the `&'static str` keys of the logging macros are never copied. Values are JSON
/// values.
///
/// Serializes as a JSON object with the entries in order, the same bytes a
/// `serde_json::Map` with the same entries gives. Equality ignores order, as for a
/// `serde_json::Map`.
///
/// A lookup compares the keys one by one while there are few of them (a record's
/// context usually has a handful); from 32 fields on, a hash index of the keys is
/// kept as well, so lookups and inserts stay `O(1)` for large contexts.
///
/// ```
/// use loggier_core::ContextFields;
///
/// let mut ctx = ContextFields::new();
/// ctx.insert("user_id", 42.into());
/// ctx.insert(String::from("route"), "/orders/{id}".into());
/// ctx.insert("user_id", 43.into());
/// assert_eq!(ctx.len(), 2);
/// assert_eq!(ctx["user_id"], 43);
/// assert_eq!(serde_json::to_string(&ctx).unwrap(), r#"{"user_id":43,"route":"/orders/{id}"}"#);
/// ```
#[derive(Clone, Default)]
pub struct ContextFields {
    entries: Vec<(Cow<'static, str>, Value)>,
    /// Position of each key in `entries`, kept while there are at least
    /// [`INDEX_FROM`] entries (built on the insert that reaches it). Boxed so a
    /// small context (no index) costs 8 bytes for it, not a `HashMap`'s 48.
    #[allow(clippy::box_collection)]
    index: Option<Box<HashMap<String, usize>>>,
}

/// Number of fields from which [`ContextFields`] keeps a hash index of its keys.
const INDEX_FROM: usize = 32;

/// `Null`, for [`Index`](std::ops::Index) of a missing key.
static NULL: Value = Value::Null;

impl ContextFields {
    /// An empty context (no allocation).
    pub const fn new() -> Self {
        ContextFields {
            entries: Vec::new(),
            index: None,
        }
    }

    /// An empty context with room for `capacity` fields.
    pub fn with_capacity(capacity: usize) -> Self {
        ContextFields {
            entries: Vec::with_capacity(capacity),
            index: None,
        }
    }

    /// Number of fields.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// `true` when there are no fields.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn position(&self, key: &str) -> Option<usize> {
        match &self.index {
            Some(index) => index.get(key).copied(),
            None => self.entries.iter().position(|(k, _)| k.as_ref() == key),
        }
    }

    /// Appends an entry whose key is not present, keeping the index.
    fn push_entry(&mut self, key: Cow<'static, str>, value: Value) {
        let at = self.entries.len();
        match &mut self.index {
            Some(index) => {
                index.insert(key.to_string(), at);
            }
            None if at + 1 >= INDEX_FROM => {
                let mut index = HashMap::with_capacity(2 * INDEX_FROM);
                for (i, (k, _)) in self.entries.iter().enumerate() {
                    index.insert(k.to_string(), i);
                }
                index.insert(key.to_string(), at);
                self.index = Some(Box::new(index));
            }
            None => {}
        }
        self.entries.push((key, value));
    }

    /// Rebuilds the index after entries moved (or drops it below [`INDEX_FROM`]).
    fn reindex(&mut self) {
        self.index = (self.entries.len() >= INDEX_FROM).then(|| {
            Box::new(
                self.entries
                    .iter()
                    .enumerate()
                    .map(|(i, (k, _))| (k.to_string(), i))
                    .collect(),
            )
        });
    }

    /// The value of `key`, if present.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.position(key).map(|i| &self.entries[i].1)
    }

    /// The value of `key` for changing in place, if present.
    pub fn get_mut(&mut self, key: &str) -> Option<&mut Value> {
        self.position(key).map(|i| &mut self.entries[i].1)
    }

    /// `true` when `key` is present.
    pub fn contains_key(&self, key: &str) -> bool {
        self.position(key).is_some()
    }

    /// Sets `key` to `value`. An existing key keeps its position and its old value
    /// is returned; a new key is appended.
    pub fn insert(&mut self, key: impl Into<Cow<'static, str>>, value: Value) -> Option<Value> {
        let key = key.into();
        match self.position(&key) {
            Some(i) => Some(std::mem::replace(&mut self.entries[i].1, value)),
            None => {
                self.push_entry(key, value);
                None
            }
        }
    }

    /// The value of `key`, inserting `default()` at the end first when the key is
    /// absent.
    pub fn get_or_insert_with(
        &mut self,
        key: impl Into<Cow<'static, str>>,
        default: impl FnOnce() -> Value,
    ) -> &mut Value {
        let key = key.into();
        let i = match self.position(&key) {
            Some(i) => i,
            None => {
                self.push_entry(key, default());
                self.entries.len() - 1
            }
        };
        &mut self.entries[i].1
    }

    /// Removes `key` and returns its value; the other fields keep their order.
    pub fn remove(&mut self, key: &str) -> Option<Value> {
        let i = self.position(key)?;
        let (_, v) = self.entries.remove(i);
        if self.index.is_some() {
            self.reindex();
        }
        Some(v)
    }

    /// Keeps only the fields for which `keep(key, value)` is `true`, in order.
    pub fn retain(&mut self, mut keep: impl FnMut(&str, &mut Value) -> bool) {
        let before = self.entries.len();
        self.entries.retain_mut(|(k, v)| keep(k, v));
        if self.index.is_some() && self.entries.len() != before {
            self.reindex();
        }
    }

    /// The fields in order, as `(key, value)`.
    pub fn iter(&self) -> Iter<'_> {
        Iter(self.entries.iter())
    }

    /// The fields in order, as `(key, value)` with the value changeable in place.
    pub fn iter_mut(&mut self) -> IterMut<'_> {
        IterMut(self.entries.iter_mut())
    }

    /// The keys in order.
    pub fn keys(&self) -> impl ExactSizeIterator<Item = &str> + '_ {
        self.entries.iter().map(|(k, _)| k.as_ref())
    }

    /// The fields as a `serde_json::Map` (every key copied into a `String`).
    pub fn into_map(self) -> Fields {
        self.entries
            .into_iter()
            .map(|(k, v)| (k.into_owned(), v))
            .collect()
    }

    /// Appends a field without looking for an existing one: the caller knows `key`
    /// is not present (a duplicate would be written twice).
    pub(crate) fn push_new(&mut self, key: Cow<'static, str>, value: Value) {
        debug_assert!(!self.contains_key(&key), "duplicate context key {key}");
        self.push_entry(key, value);
    }
}

impl fmt::Debug for ContextFields {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl PartialEq for ContextFields {
    /// The same keys with equal values, in any order.
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().all(|(k, v)| other.get(k) == Some(v))
    }
}

impl std::ops::Index<&str> for ContextFields {
    type Output = Value;

    /// The value of `key`, or `Value::Null` when it is absent (never panics, like
    /// indexing a `serde_json::Value`).
    fn index(&self, key: &str) -> &Value {
        self.get(key).unwrap_or(&NULL)
    }
}

impl Serialize for ContextFields {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(self.len()))?;
        for (k, v) in self {
            m.serialize_entry(k, v)?;
        }
        m.end()
    }
}

impl From<Fields> for ContextFields {
    /// Moves the map's entries in order (its keys are distinct: nothing is compared).
    fn from(map: Fields) -> Self {
        let mut ctx = ContextFields {
            entries: map.into_iter().map(|(k, v)| (Cow::Owned(k), v)).collect(),
            index: None,
        };
        ctx.reindex();
        ctx
    }
}

impl From<ContextFields> for Value {
    /// A JSON object with the same entries.
    fn from(ctx: ContextFields) -> Self {
        Value::Object(ctx.into_map())
    }
}

impl<K: Into<Cow<'static, str>>> Extend<(K, Value)> for ContextFields {
    /// Inserts each pair in turn (later keys overwrite earlier ones in place).
    fn extend<I: IntoIterator<Item = (K, Value)>>(&mut self, iter: I) {
        let iter = iter.into_iter();
        self.entries.reserve(iter.size_hint().0);
        for (k, v) in iter {
            self.insert(k, v);
        }
    }
}

impl<K: Into<Cow<'static, str>>> FromIterator<(K, Value)> for ContextFields {
    /// Inserts each pair in turn (later keys overwrite earlier ones in place).
    fn from_iter<I: IntoIterator<Item = (K, Value)>>(iter: I) -> Self {
        let mut ctx = ContextFields::new();
        ctx.extend(iter);
        ctx
    }
}

/// Iterator over `(&str, &Value)` of a [`ContextFields`], in order.
#[derive(Debug, Clone)]
pub struct Iter<'a>(std::slice::Iter<'a, (Cow<'static, str>, Value)>);

impl<'a> Iterator for Iter<'a> {
    type Item = (&'a str, &'a Value);

    fn next(&mut self) -> Option<Self::Item> {
        self.0.next().map(|(k, v)| (k.as_ref(), v))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.0.size_hint()
    }
}

impl ExactSizeIterator for Iter<'_> {}

impl DoubleEndedIterator for Iter<'_> {
    fn next_back(&mut self) -> Option<Self::Item> {
        self.0.next_back().map(|(k, v)| (k.as_ref(), v))
    }
}

/// Iterator over `(&str, &mut Value)` of a [`ContextFields`], in order.
#[derive(Debug)]
pub struct IterMut<'a>(std::slice::IterMut<'a, (Cow<'static, str>, Value)>);

impl<'a> Iterator for IterMut<'a> {
    type Item = (&'a str, &'a mut Value);

    fn next(&mut self) -> Option<Self::Item> {
        self.0.next().map(|(k, v)| {
            let k: &'a Cow<'static, str> = k;
            (k.as_ref(), v)
        })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.0.size_hint()
    }
}

impl ExactSizeIterator for IterMut<'_> {}

/// Owning iterator over `(key, value)` of a [`ContextFields`], in order.
#[derive(Debug)]
pub struct IntoIter(std::vec::IntoIter<(Cow<'static, str>, Value)>);

impl Iterator for IntoIter {
    type Item = (Cow<'static, str>, Value);

    fn next(&mut self) -> Option<Self::Item> {
        self.0.next()
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.0.size_hint()
    }
}

impl ExactSizeIterator for IntoIter {}

impl<'a> IntoIterator for &'a ContextFields {
    type Item = (&'a str, &'a Value);
    type IntoIter = Iter<'a>;

    fn into_iter(self) -> Iter<'a> {
        self.iter()
    }
}

impl<'a> IntoIterator for &'a mut ContextFields {
    type Item = (&'a str, &'a mut Value);
    type IntoIter = IterMut<'a>;

    fn into_iter(self) -> IterMut<'a> {
        self.iter_mut()
    }
}

impl IntoIterator for ContextFields {
    type Item = (Cow<'static, str>, Value);
    type IntoIter = IntoIter;

    fn into_iter(self) -> IntoIter {
        IntoIter(self.entries.into_iter())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn serializes_like_a_preserve_order_map_with_the_same_inserts() {
        let inserts: Vec<(&str, Value)> = vec![
            ("b", json!(1)),
            ("a", json!("x\"y")),
            ("nested", json!({"z": [1, null], "y": true})),
            ("b", json!(2.5)),
            ("c", Value::Null),
        ];
        let mut ctx = ContextFields::new();
        let mut map = Fields::new();
        for (k, v) in inserts {
            ctx.insert(k, v.clone());
            map.insert(k.to_string(), v);
        }
        assert_eq!(
            serde_json::to_string(&ctx).expect("json"),
            serde_json::to_string(&map).expect("json")
        );
        assert_eq!(ctx.keys().collect::<Vec<_>>(), ["b", "a", "nested", "c"]);
        assert_eq!(ctx, ContextFields::from(map.clone()));
        assert_eq!(ctx.clone().into_map(), map);
        assert_eq!(Value::from(ctx), Value::Object(map));
    }

    #[test]
    fn insert_overwrites_in_place_and_remove_keeps_order() {
        let mut ctx: ContextFields = [("a", json!(1)), ("b", json!(2)), ("c", json!(3))]
            .into_iter()
            .collect();
        assert_eq!(ctx.insert("b", json!(20)), Some(json!(2)));
        assert_eq!(ctx.insert(String::from("d"), json!(4)), None);
        assert_eq!(ctx.remove("a"), Some(json!(1)));
        assert_eq!(ctx.remove("a"), None);
        assert_eq!(
            serde_json::to_string(&ctx).expect("json"),
            r#"{"b":20,"c":3,"d":4}"#
        );
        assert_eq!(ctx["missing"], Value::Null);
        assert_eq!(*ctx.get_or_insert_with("c", || json!(0)), json!(3));
        assert_eq!(*ctx.get_or_insert_with("e", || json!(5)), json!(5));
        ctx.retain(|k, _| k != "d");
        assert_eq!(ctx.keys().collect::<Vec<_>>(), ["b", "c", "e"]);
    }

    #[test]
    fn large_contexts_stay_consistent_through_the_index() {
        let n = 3 * INDEX_FROM;
        let mut ctx = ContextFields::new();
        let mut map = Fields::new();
        for i in 0..n {
            ctx.insert(format!("k{i}"), json!(i));
            map.insert(format!("k{i}"), json!(i));
        }
        assert!(ctx.index.is_some());
        ctx.insert("k5", json!("five"));
        map.insert("k5".into(), json!("five"));
        assert_eq!(ctx.len(), n);
        assert_eq!(
            serde_json::to_string(&ctx).expect("json"),
            serde_json::to_string(&map).expect("json")
        );
        assert_eq!(ctx.remove("k0"), Some(json!(0)));
        assert_eq!(ctx["k1"], 1);
        assert_eq!(ctx["k5"], "five");
        assert_eq!(ctx.get(&format!("k{}", n - 1)), Some(&json!(n - 1)));
        ctx.retain(|k, _| k.len() == 2);
        assert_eq!(
            ctx.keys().collect::<Vec<_>>(),
            ["k1", "k2", "k3", "k4", "k5", "k6", "k7", "k8", "k9"]
        );
        assert!(ctx.index.is_none());
        assert_eq!(ctx["k9"], 9);
        assert_eq!(ContextFields::from(map.clone()).into_map(), map);
    }

    #[test]
    fn equality_ignores_order() {
        let a: ContextFields = [("a", json!(1)), ("b", json!(2))].into_iter().collect();
        let b: ContextFields = [("b", json!(2)), ("a", json!(1))].into_iter().collect();
        let c: ContextFields = [("b", json!(2)), ("a", json!(3))].into_iter().collect();
        assert_eq!(a, b);
        assert_ne!(a, c);
    }
}
