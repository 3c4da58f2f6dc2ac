//! Masking of secrets inside `Debug` text (arguments and return values recorded by
//! the attribute macros).
//!
//! # Security
//! `Debug` output is not structured, so this is a scan for the four shapes secrets
//! take in it: a struct field `password: "hunter2"`, a map entry
//! `"authorization": "Bearer x"`, a key/value pair `("x-api-key", "abc")` (header
//! lists) and a query parameter `?api_key=abc`. When the key is
//! sensitive the value (a quoted string, a bracketed value, or a bare token) is
//! replaced by `[FILTERED]`. Values under keys that are not recognised are kept; a
//! value whose `Debug` prints a secret without any key cannot be detected.

use crate::mask::FILTERED;

/// Replaces the values of sensitive keys in `text` (see the module docs).
pub(crate) fn scrub(text: &str, is_sensitive: &dyn Fn(&str) -> bool) -> String {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut copied = 0; // bytes of `text` already in `out`
    let mut i = 0;
    while i < bytes.len() {
        if !is_key_byte(bytes[i]) || (i > 0 && is_key_byte(bytes[i - 1])) {
            i += 1;
            continue;
        }
        // A key starts at i.
        let start = i;
        let mut end = i;
        while end < bytes.len() && is_key_byte(bytes[end]) {
            end += 1;
        }
        let key = &text[start..end];
        // `key: value`, `"key": value` (map Debug) or `key=value` (query string).
        let mut j = end;
        if j < bytes.len() && bytes[j] == b'"' && start > 0 && bytes[start - 1] == b'"' {
            j += 1;
        } else if j + 1 < bytes.len() && bytes[j] == b'\\' && bytes[j + 1] == b'"' {
            j += 2; // an escaped map key inside a Debug string
        }
        let in_tuple = start >= 2 && &bytes[start - 2..start] == b"(\"";
        let colon = j + 1 < bytes.len() && bytes[j] == b':' && bytes[j + 1] == b' ';
        let tuple =
            in_tuple && j + 1 < bytes.len() && bytes[j - 1] == b'"' && &bytes[j..j + 2] == b", ";
        let value_start = if colon || tuple {
            Some((j + 2, false))
        } else if j < bytes.len() && bytes[j] == b'=' {
            Some((j + 1, true))
        } else {
            None
        };
        match value_start {
            Some((vs, query)) if is_sensitive(key) => {
                let ve = if query {
                    query_value_end(bytes, vs)
                } else {
                    debug_value_end(bytes, vs)
                };
                out.push_str(&text[copied..vs]);
                let quoted = !query && vs < bytes.len() && bytes[vs] == b'"';
                if quoted {
                    out.push('"');
                    out.push_str(FILTERED);
                    out.push('"');
                } else {
                    out.push_str(FILTERED);
                }
                copied = ve;
                i = ve;
            }
            _ => i = end,
        }
    }
    out.push_str(&text[copied..]);
    out
}

fn is_key_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'-'
}

/// End of a query-parameter value: the next `&`, `#`, quote, backslash, whitespace,
/// `,` or closing bracket.
fn query_value_end(bytes: &[u8], from: usize) -> usize {
    let mut i = from;
    while i < bytes.len()
        && !matches!(
            bytes[i],
            b'&' | b'#' | b'"' | b'\\' | b',' | b')' | b'}' | b']' | b' ' | b'\n' | b'\t'
        )
    {
        i += 1;
    }
    i
}

/// End of a `Debug` value: a whole quoted string, or everything up to the `,` or
/// closing bracket at the value's own nesting depth.
fn debug_value_end(bytes: &[u8], from: usize) -> usize {
    let mut i = from;
    if i < bytes.len() && bytes[i] == b'"' {
        i += 1;
        while i < bytes.len() {
            match bytes[i] {
                b'\\' => i += 2,
                b'"' => return i + 1,
                _ => i += 1,
            }
        }
        return bytes.len();
    }
    let mut depth = 0usize;
    let mut in_str = false;
    while i < bytes.len() {
        let b = bytes[i];
        if in_str {
            match b {
                b'\\' => i += 1,
                b'"' => in_str = false,
                _ => {}
            }
        } else {
            match b {
                b'"' => in_str = true,
                b'(' | b'[' | b'{' => depth += 1,
                b')' | b']' | b'}' if depth == 0 => return i,
                b')' | b']' | b'}' => depth -= 1,
                b',' if depth == 0 => return i,
                _ => {}
            }
        }
        i += 1;
    }
    bytes.len().min(i)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mask::Masker;

    fn scrub_default(text: &str) -> String {
        let m = Masker::default();
        scrub(text, &|k| m.is_sensitive_key(k))
    }

    #[test]
    fn struct_fields_map_entries_and_query_params() {
        let s = scrub_default(r#"Login { user: "ann", password: "hunter2", pin: 12 }"#);
        assert_eq!(
            s,
            r#"Login { user: "ann", password: "[FILTERED]", pin: 12 }"#
        );
        let s = scrub_default(r#"{"authorization": "Bearer abc", "accept": "*/*"}"#);
        assert_eq!(s, r#"{"authorization": "[FILTERED]", "accept": "*/*"}"#);
        let s = scrub_default(r#"[("accept", "json"), ("x-api-key", "k1"), ("cookie", Some(1))]"#);
        assert_eq!(
            s,
            r#"[("accept", "json"), ("x-api-key", "[FILTERED]"), ("cookie", [FILTERED])]"#
        );
        let s = scrub_default(r#""https://x.test/a?api_key=abc123&page=2""#);
        assert_eq!(s, r#""https://x.test/a?api_key=[FILTERED]&page=2""#);
    }

    #[test]
    fn nested_values_and_escapes() {
        let s = scrub_default(
            r#"Cfg { token: Some(Secret { raw: "t,}" }), db_password: "a\"b", n: 1 }"#,
        );
        assert_eq!(
            s,
            r#"Cfg { token: [FILTERED], db_password: "[FILTERED]", n: 1 }"#
        );
        assert!(!s.contains("t,}"));
    }

    #[test]
    fn paths_and_plain_text_are_kept() {
        let t = "std::io::Error: token_count 3, author: \"x\"";
        assert_eq!(scrub_default(t), t);
    }
}
