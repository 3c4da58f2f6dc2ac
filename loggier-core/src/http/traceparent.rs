//! W3C Trace Context `traceparent` header parsing
//! (<https://www.w3.org/TR/trace-context/#traceparent-header>).

/// A parsed `traceparent` header: `version-trace_id-parent_id-trace_flags`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceParent {
    /// Trace id: 32 lower-case hex characters, not all zero.
    pub trace_id: String,
    /// The caller's span id (`parent-id`): 16 lower-case hex characters, not all zero.
    pub span_id: String,
    /// `trace-flags` (bit 0 = sampled).
    pub flags: u8,
}

impl TraceParent {
    /// Parses a `traceparent` value. Returns `None` for anything the spec says to
    /// ignore: wrong field lengths, upper-case or non-hex digits, version `ff`, an
    /// all-zero trace or parent id, or (for version `00`) trailing data. Versions
    /// above `00` may carry extra `-`-separated fields, which are ignored
    /// (spec §"Versioning of traceparent").
    pub fn parse(value: &[u8]) -> Option<TraceParent> {
        let v = std::str::from_utf8(value).ok()?.trim_matches([' ', '\t']);
        if v.len() < 55 || !v.is_ascii() {
            return None;
        }
        let (version, rest) = (v.get(..2)?, v.get(2..)?);
        if !is_lower_hex(version) || version == "ff" {
            return None;
        }
        if version == "00" && v.len() != 55 {
            return None;
        }
        if version != "00" && v.len() > 55 && v.as_bytes()[55] != b'-' {
            return None;
        }
        let b = rest.as_bytes();
        if b[0] != b'-' || b[33] != b'-' || b[50] != b'-' {
            return None;
        }
        let trace_id = &rest[1..33];
        let span_id = &rest[34..50];
        let flags = &rest[51..53];
        if !is_lower_hex(trace_id) || !is_lower_hex(span_id) || !is_lower_hex(flags) {
            return None;
        }
        if trace_id.bytes().all(|c| c == b'0') || span_id.bytes().all(|c| c == b'0') {
            return None;
        }
        Some(TraceParent {
            trace_id: trace_id.to_string(),
            span_id: span_id.to_string(),
            flags: u8::from_str_radix(flags, 16).ok()?,
        })
    }

    /// `true` when the caller sampled this trace (flag bit 0).
    pub fn sampled(&self) -> bool {
        self.flags & 1 == 1
    }
}

fn is_lower_hex(s: &str) -> bool {
    s.bytes().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f'))
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn parses_the_spec_example() {
        let t = TraceParent::parse(GOOD.as_bytes()).expect("valid");
        assert_eq!(t.trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(t.span_id, "00f067aa0ba902b7");
        assert!(t.sampled());
    }

    #[test]
    fn future_versions_may_carry_more_fields() {
        let v = format!("01-{}-{}-00-extra", "a".repeat(32), "b".repeat(16));
        let t = TraceParent::parse(v.as_bytes()).expect("valid");
        assert!(!t.sampled());
        let v = format!("01-{}-{}-00x", "a".repeat(32), "b".repeat(16));
        assert!(TraceParent::parse(v.as_bytes()).is_none());
    }

    #[test]
    fn invalid_values_are_ignored() {
        let cases = [
            String::new(),
            "garbage".to_string(),
            GOOD.to_uppercase(),
            GOOD.replacen("00-", "ff-", 1),
            format!("{GOOD}-extra"),
            format!("00-{}-00f067aa0ba902b7-01", "0".repeat(32)),
            format!("00-4bf92f3577b34da6a3ce929d0e0e4736-{}-01", "0".repeat(16)),
            GOOD.replace('-', "_"),
            "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01".to_string(),
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0".to_string(),
            "é".repeat(30),
        ];
        for c in cases {
            assert!(TraceParent::parse(c.as_bytes()).is_none(), "{c:?}");
        }
    }
}
