//! Masking of request data at capture time: headers, query parameters, JSON and form
//! bodies. Values of sensitive keys become [`FILTERED`].
//!
//! This runs when a record is built, before it enters the pipeline; the worker masks
//! every record again with the client's own sensitive fields.

use serde_json::Value;

use crate::mask::{Masker, percent_decode};
use crate::record::Fields;

pub use crate::mask::FILTERED;

/// Query string (without `?`) → ordered fields; percent-decoded, `+` as space,
/// repeated keys collected into an array, sensitive keys masked.
pub(crate) fn query_fields(query: &str, masker: &Masker) -> Fields {
    let mut out = Fields::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let key = percent_decode(k);
        let value = if masker.is_sensitive_key(&key) {
            Value::from(FILTERED)
        } else {
            Value::from(percent_decode(v))
        };
        match out.get_mut(&key) {
            Some(Value::Array(a)) => a.push(value),
            Some(prev) => {
                let first = prev.take();
                *prev = Value::Array(vec![first, value]);
            }
            None => {
                out.insert(key, value);
            }
        }
    }
    out
}

/// Masks, in place, every object member of `v` whose key is sensitive, at any depth.
pub(crate) fn mask_json(v: &mut Value, masker: &Masker) {
    masker.mask_value(v);
}

/// Masks sensitive members in JSON *text* that may be cut off or invalid (a truncated
/// body), then any `key=value` / `key: value` pairs left in it; see
/// [`Masker::mask_json_text`] and [`Masker::mask_text`].
pub(crate) fn mask_json_text(text: &str, masker: &Masker) -> String {
    let json = masker.mask_json_text(text);
    masker.mask_text(&json).into_owned()
}

/// Masks secrets in a text body (see [`Masker::mask_text`]).
pub(crate) fn mask_text(text: &str, masker: &Masker) -> String {
    masker.mask_text(text).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_is_decoded_repeated_keys_collected_and_secrets_masked() {
        let f = query_fields(
            "q=hello+world&tag=a&tag=b&token=abc%20def&x=%ZZ&empty",
            &Masker::default(),
        );
        assert_eq!(f["q"], "hello world");
        assert_eq!(f["tag"], serde_json::json!(["a", "b"]));
        assert_eq!(f["token"], FILTERED);
        assert_eq!(f["x"], "%ZZ");
        assert_eq!(f["empty"], "");
        assert_eq!(percent_decode("%"), "%");
        assert_eq!(percent_decode("a%4"), "a%4");
        assert_eq!(percent_decode("%41%42"), "AB");
    }

    #[test]
    fn json_values_masked_at_any_depth() {
        let mut v = serde_json::json!({
            "user": "bob", "password": "hunter2",
            "nested": [{"api_key": {"k": 1}, "ok": true}]
        });
        mask_json(&mut v, &Masker::default());
        assert_eq!(v["password"], FILTERED);
        assert_eq!(v["nested"][0]["api_key"], FILTERED);
        assert_eq!(v["nested"][0]["ok"], true);
        assert_eq!(v["user"], "bob");
    }

    #[test]
    fn truncated_json_text_is_masked_without_parsing() {
        let t = r#"{"user":"bob","password" : "hun\"ter2","card_number":4111,"token":{"a":[1,"x"]},"n":"ok","secret":"cut off he"#;
        let m = mask_json_text(t, &Masker::default());
        assert!(!m.contains("hun"), "{m}");
        assert!(!m.contains("4111"), "{m}");
        assert!(!m.contains("cut off"), "{m}");
        assert!(!m.contains(r#""a":[1"#), "{m}");
        assert!(m.contains(r#""user":"bob""#), "{m}");
        assert!(m.contains(r#""n":"ok""#), "{m}");
        assert!(m.contains(r#""password" : "[FILTERED]""#), "{m}");
        // A key cut off before its value: nothing to leak, nothing dropped.
        assert_eq!(
            mask_json_text(r#"{"password""#, &Masker::default()),
            r#"{"password""#
        );
        assert_eq!(
            mask_json_text(r#"{"password": "#, &Masker::default()),
            r#"{"password": "[FILTERED]""#
        );
    }

    #[test]
    fn form_bodies_masked_by_key() {
        assert_eq!(
            Masker::default().mask_form_text("user=bob&pass%77ord=x&token=y&z"),
            "user=bob&pass%77ord=[FILTERED]&token=[FILTERED]&z"
        );
    }
}
