//! Masking of request data at capture time: headers, query parameters, JSON and form
//! bodies. Values of sensitive keys become [`FILTERED`].
//!
//! This runs when a record is built, before it enters the pipeline; the worker masks
//! every record again with the client's own sensitive fields.

use serde_json::Value;

use crate::mask::Masker;
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

/// Decodes `%XX` escapes and `+` (form encoding); invalid escapes are kept as they are,
/// invalid UTF-8 replaced.
pub(crate) fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => match (hex(b[i + 1]), hex(b[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h << 4 | l);
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// Masks, in place, every object member of `v` whose key is sensitive, at any depth.
pub(crate) fn mask_json(v: &mut Value, masker: &Masker) {
    masker.mask_value(v);
}

/// Masks sensitive members in JSON *text* that may be cut off or invalid (a truncated
/// body): every `"key": value` whose key is sensitive gets its value replaced by
/// `"[FILTERED]"`; a value cut off by the end of the text is dropped. Everything else is
/// copied unchanged.
pub(crate) fn mask_json_text(text: &str, masker: &Masker) -> String {
    let b = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    let mut copied = 0;
    while i < b.len() {
        if b[i] != b'"' {
            i += 1;
            continue;
        }
        let key_start = i;
        let key_end = skip_string(b, i);
        // A string followed by ':' is a key.
        let mut j = key_end;
        while j < b.len() && b[j].is_ascii_whitespace() {
            j += 1;
        }
        if key_end > b.len() || j >= b.len() || b[j] != b':' {
            i = key_end;
            continue;
        }
        let key_text = &text[key_start + 1..key_end.saturating_sub(1).max(key_start + 1)];
        j += 1;
        while j < b.len() && b[j].is_ascii_whitespace() {
            j += 1;
        }
        if masker.is_sensitive_key(key_text) {
            let value_end = skip_value(b, j);
            out.push_str(&text[copied..j]);
            out.push('"');
            out.push_str(FILTERED);
            out.push('"');
            copied = value_end.min(b.len());
            i = copied;
        } else {
            i = j;
        }
    }
    if copied < b.len() {
        out.push_str(&text[copied..]);
    }
    out
}

/// Index just past the string starting at `b[start] == '"'` (or `b.len()` if cut off).
fn skip_string(b: &[u8], start: usize) -> usize {
    let mut i = start + 1;
    while i < b.len() {
        match b[i] {
            b'\\' => i += 2,
            b'"' => return i + 1,
            _ => i += 1,
        }
    }
    b.len()
}

/// Index just past the JSON value starting at `start` (or `b.len()` if cut off).
fn skip_value(b: &[u8], start: usize) -> usize {
    match b.get(start) {
        None => b.len(),
        Some(b'"') => skip_string(b, start),
        Some(b'{' | b'[') => {
            let mut depth = 0usize;
            let mut i = start;
            while i < b.len() {
                match b[i] {
                    b'"' => {
                        i = skip_string(b, i);
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth = depth.saturating_sub(1);
                        if depth == 0 {
                            return i + 1;
                        }
                    }
                    _ => {}
                }
                i += 1;
            }
            b.len()
        }
        Some(_) => {
            let mut i = start;
            while i < b.len() && !matches!(b[i], b',' | b'}' | b']') && !b[i].is_ascii_whitespace()
            {
                i += 1;
            }
            i
        }
    }
}

/// Masks sensitive fields of an `application/x-www-form-urlencoded` body, keeping the
/// encoded form (`user=bob&password=[FILTERED]`).
pub(crate) fn mask_form_text(text: &str, masker: &Masker) -> String {
    let mut out = String::with_capacity(text.len());
    for (n, pair) in text.split('&').enumerate() {
        if n > 0 {
            out.push('&');
        }
        match pair.split_once('=') {
            Some((k, _)) if masker.is_sensitive_key(&percent_decode(k)) => {
                out.push_str(k);
                out.push('=');
                out.push_str(FILTERED);
            }
            _ => out.push_str(pair),
        }
    }
    out
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
            mask_form_text("user=bob&pass%77ord=x&token=y&z", &Masker::default()),
            "user=bob&pass%77ord=[FILTERED]&token=[FILTERED]&z"
        );
    }
}
