//! Request ids: accept a well-formed incoming value, otherwise generate a UUIDv7.

/// Longest incoming request id accepted, bytes. Longer values are replaced by a fresh
/// id so a client cannot make every record of a request arbitrarily large.
pub const MAX_REQUEST_ID_LEN: usize = 128;

/// The request id for a request: `incoming` (the value of the `request_id_header`)
/// when it is 1–[`MAX_REQUEST_ID_LEN`] bytes of visible ASCII (`!`..=`~`, no spaces or
/// control characters), otherwise a new UUIDv7 in hyphenated lower-case form
/// (time-ordered, so ids sort by arrival).
///
/// # Security
/// The incoming value is client-controlled; the character check keeps it safe to
/// echo in a response header and to store in log lines.
pub fn request_id_or_generate(incoming: Option<&[u8]>) -> String {
    match incoming {
        Some(v) if is_valid_request_id(v) => {
            // Visible ASCII is valid UTF-8.
            String::from_utf8_lossy(v).into_owned()
        }
        _ => generate_request_id(),
    }
}

/// `true` when `v` is 1–[`MAX_REQUEST_ID_LEN`] bytes of visible ASCII.
pub fn is_valid_request_id(v: &[u8]) -> bool {
    !v.is_empty() && v.len() <= MAX_REQUEST_ID_LEN && v.iter().all(|b| (0x21..=0x7e).contains(b))
}

/// A new UUIDv7, hyphenated lower case (36 characters).
pub fn generate_request_id() -> String {
    uuid::Uuid::now_v7().hyphenated().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_visible_ascii_within_bounds() {
        assert_eq!(request_id_or_generate(Some(b"abc-123_X.y")), "abc-123_X.y");
        let max = vec![b'a'; MAX_REQUEST_ID_LEN];
        assert_eq!(request_id_or_generate(Some(&max)).len(), MAX_REQUEST_ID_LEN);
    }

    #[test]
    fn replaces_missing_empty_long_or_odd_values_with_uuid_v7() {
        let long = [b'a'; MAX_REQUEST_ID_LEN + 1];
        for bad in [
            None,
            Some(&b""[..]),
            Some(&b"has space"[..]),
            Some(&b"tab\t"[..]),
            Some(&long[..]),
            Some("é".as_bytes()),
        ] {
            let id = request_id_or_generate(bad);
            let u = uuid::Uuid::parse_str(&id).expect("uuid");
            assert_eq!(u.get_version_num(), 7, "{bad:?}");
            assert_eq!(id.len(), 36);
        }
        assert_ne!(generate_request_id(), generate_request_id());
    }
}
