//! Request ids: accept a well-formed incoming value, otherwise generate a UUIDv7.

use crate::context::RequestId;

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

/// [`request_id_or_generate`] as a scope frame keeps it: a generated id stays inline
/// (no allocation), an accepted incoming one is copied once.
pub(crate) fn request_id_or_generate_inline(incoming: Option<&[u8]>) -> RequestId {
    match incoming {
        Some(v) if is_valid_request_id(v) => {
            RequestId::from(String::from_utf8_lossy(v).into_owned())
        }
        _ => RequestId::uuid(generate_request_id_text()),
    }
}

/// Bytes of request id text a thread keeps for [`shared_text`].
pub(crate) const ID_TEXT_CHUNK: usize = 4096;

thread_local! {
    /// Where this thread writes the request ids handed out by [`shared_text`]: each
    /// is a slice of a shared chunk (a reference count instead of an allocation per
    /// request). A chunk is reused once the values holding its ids are gone, else a
    /// new one is taken.
    static ID_TEXT: std::cell::RefCell<bytes::BytesMut> =
        std::cell::RefCell::new(bytes::BytesMut::new());
}

/// `id` as bytes of this thread's [`ID_TEXT`] chunk, for a response header echoing
/// it: no allocation of its own (one per chunk of ids), a reference count to drop.
pub(crate) fn shared_text(id: &str) -> bytes::Bytes {
    ID_TEXT
        .try_with(|text| {
            let mut text = text.borrow_mut();
            if text.capacity() < id.len() {
                text.reserve(ID_TEXT_CHUNK.max(id.len()));
            }
            text.extend_from_slice(id.as_bytes());
            text.split().freeze()
        })
        .unwrap_or_else(|_| bytes::Bytes::copy_from_slice(id.as_bytes()))
}

/// `true` when `v` is 1–[`MAX_REQUEST_ID_LEN`] bytes of visible ASCII.
pub fn is_valid_request_id(v: &[u8]) -> bool {
    !v.is_empty() && v.len() <= MAX_REQUEST_ID_LEN && v.iter().all(|b| (0x21..=0x7e).contains(b))
}

/// A new UUIDv7 (RFC 9562), hyphenated lower case (36 characters): the Unix time in
/// milliseconds, then 74 random bits. Ids sort by arrival to the millisecond; within a
/// millisecond their order is random.
///
/// The random bits come from `fastrand`'s per-thread generator, not from a shared,
/// locked clock sequence: one clock read, two register-only random draws and one
/// 36-byte allocation per id. Request ids are correlation ids, not secrets; do not use
/// them as tokens.
pub fn generate_request_id() -> String {
    generate_request_id_text().as_str().to_owned()
}

/// [`generate_request_id`] as its 36 ASCII bytes, without an allocation.
/// (`uuid` hands back the text as a `str`, so it is not validated again.)
pub(crate) fn generate_request_id_text() -> arrayvec::ArrayString<{ uuid::fmt::Hyphenated::LENGTH }>
{
    let millis = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    let bits = fastrand::u128(..).to_le_bytes();
    let mut random = [0u8; 10];
    random.copy_from_slice(&bits[..10]);
    let id = uuid::Builder::from_unix_timestamp_millis(millis, &random).into_uuid();
    let mut buf = [0u8; uuid::fmt::Hyphenated::LENGTH];
    let mut text = arrayvec::ArrayString::new();
    // Exactly `LENGTH` bytes: fits.
    text.push_str(id.hyphenated().encode_lower(&mut buf));
    text
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

    #[test]
    fn the_inline_form_keeps_the_same_text() {
        let generated = request_id_or_generate_inline(None);
        assert!(matches!(generated, RequestId::Uuid(_)));
        let u = uuid::Uuid::parse_str(generated.as_str()).expect("uuid");
        assert_eq!(u.get_version_num(), 7);
        assert_eq!(
            request_id_or_generate_inline(Some(b"abc-1")).as_str(),
            "abc-1"
        );
        let bad = request_id_or_generate_inline(Some(b"has space"));
        assert_eq!(bad.as_str().len(), 36);
    }

    /// Shared texts made on one thread stay right while earlier ones are held,
    /// across the chunks they are written in.
    #[test]
    fn shared_texts_keep_their_bytes_across_chunks() {
        let ids: Vec<String> = (0..3 * ID_TEXT_CHUNK / 36)
            .map(|i| format!("0192c6a4-{i:04x}-7abc-8def-0123456789ab"))
            .collect();
        let mut held = Vec::new();
        for (i, id) in ids.iter().enumerate() {
            let text = shared_text(id);
            assert_eq!(&text[..], id.as_bytes());
            // Every other text is dropped right away, the rest held.
            if i % 2 == 0 {
                held.push((text, id));
            }
        }
        for (text, id) in held {
            assert_eq!(&text[..], id.as_bytes());
        }
        let long = "x".repeat(ID_TEXT_CHUNK + 1);
        assert_eq!(&shared_text(&long)[..], long.as_bytes());
    }

    #[test]
    fn generated_ids_carry_the_current_unix_millis() {
        let before = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock after 1970")
            .as_millis();
        let id = uuid::Uuid::parse_str(&generate_request_id()).expect("uuid");
        let after = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock after 1970")
            .as_millis();
        let (secs, nanos) = id.get_timestamp().expect("v7 has a timestamp").to_unix();
        let ms = u128::from(secs) * 1000 + u128::from(nanos / 1_000_000);
        assert!(before <= ms && ms <= after, "{before} <= {ms} <= {after}");
        assert_eq!(id.get_variant(), uuid::Variant::RFC4122);
        let id_text = id.hyphenated().to_string();
        assert_eq!(id_text, id_text.to_ascii_lowercase());
    }
}
