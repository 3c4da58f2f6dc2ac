//! Masking of secrets before a record leaves the process.
//!
//! # Security
//! The worker masks every record before any sink encodes it: context fields (nested
//! objects and arrays included), HTTP query parameters, headers and JSON bodies. A
//! key is sensitive when, lower-cased with `-` folded to `_`, it equals one of the
//! keys in [`DEFAULT_SENSITIVE_KEYS`] or the configured `sensitive_fields`, or contains
//! one of the strong markers in [`SENSITIVE_SUBSTRINGS`] (so `db_password` and
//! `x-auth-token` are masked too). The value is replaced by [`FILTERED`] whatever its
//! type. Text that is not structured (a message, a non-JSON body) is not scanned.

use std::collections::HashSet;

use serde_json::Value;

use crate::record::{BodyContent, CapturedBody, Fields, Record};

/// The replacement for a masked value.
pub const FILTERED: &str = "[FILTERED]";

/// Keys masked by default (compared after lower-casing and folding `-` to `_`).
pub const DEFAULT_SENSITIVE_KEYS: &[&str] = &[
    "password",
    "passwd",
    "secret",
    "token",
    "api_key",
    "apikey",
    "authorization",
    "auth",
    "cookie",
    "set_cookie",
    "session",
    "sessionid",
    "csrftoken",
    "credit_card",
    "card_number",
    "cvv",
    "ssn",
    "private_key",
    "x_api_key",
];

/// Markers that make any key containing them sensitive (after folding), e.g.
/// `user_password`, `refresh_token`, `client_secret`.
pub const SENSITIVE_SUBSTRINGS: &[&str] = &[
    "password",
    "passwd",
    "secret",
    "token",
    "api_key",
    "apikey",
    "private_key",
    "credit_card",
    "card_number",
];

/// Decides which keys are secrets and masks them. Cheap to clone (a set of strings).
#[derive(Debug, Clone)]
pub struct Masker {
    keys: HashSet<String>,
}

impl Default for Masker {
    fn default() -> Self {
        Masker::new(std::iter::empty::<&str>())
    }
}

impl Masker {
    /// The default keys plus `extra` (folded the same way).
    pub fn new<I, S>(extra: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut keys: HashSet<String> = DEFAULT_SENSITIVE_KEYS
            .iter()
            .map(|k| (*k).to_string())
            .collect();
        keys.extend(extra.into_iter().map(|k| fold(k.as_ref())));
        Masker { keys }
    }

    /// This masker with `extra` keys added (folded the same way).
    #[must_use]
    pub fn with_keys<I, S>(mut self, extra: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        self.keys
            .extend(extra.into_iter().map(|k| fold(k.as_ref())));
        self
    }

    /// `true` when `key` names a secret.
    pub fn is_sensitive_key(&self, key: &str) -> bool {
        let k = fold(key);
        self.keys.contains(&k) || SENSITIVE_SUBSTRINGS.iter().any(|s| k.contains(s))
    }

    /// Masks sensitive keys in `fields`, recursing into nested objects and arrays.
    pub fn mask_fields(&self, fields: &mut Fields) {
        for (k, v) in fields.iter_mut() {
            if self.is_sensitive_key(k) {
                *v = Value::String(FILTERED.to_string());
            } else {
                self.mask_value(v);
            }
        }
    }

    /// Masks sensitive keys anywhere inside `value`.
    pub fn mask_value(&self, value: &mut Value) {
        match value {
            Value::Object(map) => self.mask_fields(map),
            Value::Array(items) => items.iter_mut().for_each(|v| self.mask_value(v)),
            _ => {}
        }
    }

    /// Masks a record in place: context, HTTP query parameters, headers and JSON
    /// bodies.
    pub fn mask_record(&self, record: &mut Record) {
        self.mask_fields(&mut record.context);
        if let Some(http) = record.http.as_deref_mut() {
            self.mask_fields(&mut http.request.query);
            self.mask_fields(&mut http.request.headers);
            self.mask_body(http.request.body.as_mut());
            if let Some(resp) = http.response.as_mut() {
                self.mask_fields(&mut resp.headers);
                self.mask_body(resp.body.as_mut());
            }
        }
    }

    fn mask_body(&self, body: Option<&mut CapturedBody>) {
        if let Some(CapturedBody {
            content: BodyContent::Json(v),
            ..
        }) = body
        {
            self.mask_value(v);
        }
    }
}

fn fold(key: &str) -> String {
    key.trim().to_ascii_lowercase().replace('-', "_")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::Level;
    use serde_json::json;

    #[test]
    fn every_default_key_is_masked_case_and_dash_insensitively() {
        let m = Masker::default();
        for k in DEFAULT_SENSITIVE_KEYS {
            assert!(m.is_sensitive_key(k), "{k}");
            assert!(m.is_sensitive_key(&k.to_ascii_uppercase()), "{k}");
            assert!(m.is_sensitive_key(&k.replace('_', "-")), "{k}");
        }
        assert!(m.is_sensitive_key("Set-Cookie"));
        assert!(m.is_sensitive_key("db_password"));
        assert!(!m.is_sensitive_key("author"));
        assert!(!m.is_sensitive_key("user_id"));
    }

    #[test]
    fn masks_nested_objects_and_arrays() {
        let m = Masker::new(["pin"]);
        let mut r = Record::new(Level::Info, "x")
            .with_field(
                "user",
                json!({"name": "ann", "password": "hunter2", "cards": [{"CVV": 123}]}),
            )
            .with_field("PIN", "0000")
            .with_field("list", json!([{"token": "t"}, "plain"]));
        m.mask_record(&mut r);
        let text = serde_json::to_string(&r.context).expect("json");
        assert!(
            !text.contains("hunter2") && !text.contains("123") && !text.contains("0000"),
            "{text}"
        );
        assert_eq!(r.context["user"]["name"], "ann");
        assert_eq!(r.context["user"]["password"], FILTERED);
        assert_eq!(r.context["user"]["cards"][0]["CVV"], FILTERED);
        assert_eq!(r.context["PIN"], FILTERED);
        assert_eq!(r.context["list"][0]["token"], FILTERED);
        assert_eq!(r.context["list"][1], "plain");
    }
}
