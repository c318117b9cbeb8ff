//! The metadata key/value list, kept in file order with an index by key.

use std::collections::HashMap;

use super::error::{GgufError, Result};
use super::value::{Array, Value};

/// The metadata of a GGUF file: `(key, value)` pairs in file order, with O(1) lookup by key.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Metadata {
    entries: Vec<(String, Value)>,
    index: HashMap<String, usize>,
}

impl Metadata {
    /// An empty list.
    pub fn new() -> Metadata {
        Metadata::default()
    }

    /// An empty list with room for `n` entries and `n_index` index slots.
    pub(crate) fn with_capacity(n: usize, n_index: usize) -> Metadata {
        Metadata {
            entries: Vec::with_capacity(n),
            index: HashMap::with_capacity(n_index),
        }
    }

    /// The value of `key`, if present.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.index
            .get(key)
            .and_then(|&i| self.entries.get(i))
            .map(|(_, v)| v)
    }

    /// Whether `key` is present.
    pub fn contains_key(&self, key: &str) -> bool {
        self.index.contains_key(key)
    }

    /// All entries in file (insertion) order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&str, &Value)> + '_ {
        self.entries.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Sets `key` to `value`. An existing key keeps its position; a new one goes last. Returns
    /// the previous value.
    pub fn insert(&mut self, key: impl Into<String>, value: impl Into<Value>) -> Option<Value> {
        let key = key.into();
        let value = value.into();
        if let Some(&i) = self.index.get(&key) {
            if let Some(slot) = self.entries.get_mut(i) {
                return Some(std::mem::replace(&mut slot.1, value));
            }
        }
        self.index.insert(key.clone(), self.entries.len());
        self.entries.push((key, value));
        None
    }

    /// Same as [`Metadata::insert`].
    pub fn set(&mut self, key: impl Into<String>, value: impl Into<Value>) -> Option<Value> {
        self.insert(key, value)
    }

    /// Adds a key that must be new (the reader's path): returns the key back if it exists.
    pub(crate) fn push_new(&mut self, key: String, value: Value) -> Result<(), String> {
        if self.index.contains_key(&key) {
            return Err(key);
        }
        self.index.insert(key.clone(), self.entries.len());
        self.entries.push((key, value));
        Ok(())
    }

    /// Removes `key`, keeping the order of the others. Returns its value.
    pub fn remove(&mut self, key: &str) -> Option<Value> {
        let i = self.index.remove(key)?;
        if i >= self.entries.len() {
            return None;
        }
        let (_, v) = self.entries.remove(i);
        for slot in self.index.values_mut() {
            if *slot > i {
                *slot -= 1;
            }
        }
        Some(v)
    }

    fn require(&self, key: &str) -> Result<&Value> {
        self.get(key).ok_or_else(|| GgufError::MissingKey {
            key: key.to_owned(),
        })
    }

    fn wrong(key: &str, expected: &'static str, v: &Value) -> GgufError {
        GgufError::WrongType {
            key: key.to_owned(),
            expected,
            found: v.type_name(),
        }
    }

    /// The string value of `key`.
    pub fn get_str(&self, key: &str) -> Result<&str> {
        let v = self.require(key)?;
        v.as_str().ok_or_else(|| Self::wrong(key, "string", v))
    }

    /// The value of `key` as `u32` (any integer type whose value fits).
    pub fn get_u32(&self, key: &str) -> Result<u32> {
        let v = self.require(key)?;
        v.as_u32().ok_or_else(|| Self::wrong(key, "u32", v))
    }

    /// The value of `key` as `u64` (any non-negative integer).
    pub fn get_u64(&self, key: &str) -> Result<u64> {
        let v = self.require(key)?;
        v.as_u64().ok_or_else(|| Self::wrong(key, "u64", v))
    }

    /// The value of `key` as `i64` (any integer that fits).
    pub fn get_i64(&self, key: &str) -> Result<i64> {
        let v = self.require(key)?;
        v.as_i64().ok_or_else(|| Self::wrong(key, "i64", v))
    }

    /// The value of `key` as `f32` (any numeric type).
    pub fn get_f32(&self, key: &str) -> Result<f32> {
        let v = self.require(key)?;
        v.as_f32().ok_or_else(|| Self::wrong(key, "f32", v))
    }

    /// The value of `key` as `f64` (any numeric type).
    pub fn get_f64(&self, key: &str) -> Result<f64> {
        let v = self.require(key)?;
        v.as_f64().ok_or_else(|| Self::wrong(key, "f64", v))
    }

    /// The bool value of `key`.
    pub fn get_bool(&self, key: &str) -> Result<bool> {
        let v = self.require(key)?;
        v.as_bool().ok_or_else(|| Self::wrong(key, "bool", v))
    }

    /// The array value of `key`.
    pub fn get_array(&self, key: &str) -> Result<&Array> {
        let v = self.require(key)?;
        v.as_array().ok_or_else(|| Self::wrong(key, "array", v))
    }
}

impl<K: Into<String>, V: Into<Value>> FromIterator<(K, V)> for Metadata {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Metadata {
        let mut m = Metadata::new();
        for (k, v) in iter {
            m.insert(k, v);
        }
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insert_keeps_position_and_remove_reindexes() {
        let mut m = Metadata::new();
        m.insert("a", 1u32);
        m.insert("b", "x");
        m.insert("c", true);
        assert_eq!(m.insert("a", 2u64), Some(Value::U32(1)));
        let keys: Vec<_> = m.iter().map(|(k, _)| k).collect();
        assert_eq!(keys, ["a", "b", "c"]);
        assert_eq!(m.remove("b"), Some(Value::String("x".into())));
        assert_eq!(m.get_bool("c").ok(), Some(true));
        assert_eq!(m.get_u64("a").ok(), Some(2));
        assert!(matches!(m.get_str("a"), Err(GgufError::WrongType { .. })));
        assert!(matches!(m.get_str("b"), Err(GgufError::MissingKey { .. })));
    }
}
