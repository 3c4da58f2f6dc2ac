//! Request bodies: media type, bounded reading, bounded gzip, UTF-8 and nesting checks.
//!
//! Everything here runs before a body is parsed, so a hostile body costs at most
//! [`Limits::max_body_bytes`] of memory — compressed or not.

use std::io::Read;

use axum::body::Body;
use axum::http::{HeaderMap, StatusCode, header};
use bytes::Bytes;
use http_body_util::{BodyExt, Limited};

use crate::config::Limits;
use crate::error::ApiError;

/// Body formats the relay reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaType {
    /// `application/json` (and `text/plain`, which `navigator.sendBeacon` sends).
    Json,
    /// `application/x-ndjson`, `application/ndjson`, `application/jsonl`: one JSON
    /// value per line.
    Ndjson,
    /// `application/x-protobuf`: a snappy-compressed Loki `PushRequest`.
    Protobuf,
}

impl MediaType {
    /// Parses a `Content-Type` value (parameters such as `charset` are ignored).
    pub fn parse(value: &str) -> Option<MediaType> {
        let essence = value.split(';').next().unwrap_or("").trim();
        match essence.to_ascii_lowercase().as_str() {
            "application/json" | "text/plain" => Some(MediaType::Json),
            "application/x-ndjson"
            | "application/ndjson"
            | "application/jsonl"
            | "application/x-jsonlines" => Some(MediaType::Ndjson),
            "application/x-protobuf" | "application/protobuf" => Some(MediaType::Protobuf),
            _ => None,
        }
    }
}

/// The request's media type if it is one of `allowed`.
///
/// # Errors
/// 415 `unsupported_media_type` naming the accepted types when the header is missing,
/// unreadable or not in `allowed`.
pub fn media_type(headers: &HeaderMap, allowed: &[MediaType]) -> Result<MediaType, ApiError> {
    let raw = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    let names = allowed
        .iter()
        .map(|m| match m {
            MediaType::Json => "application/json",
            MediaType::Ndjson => "application/x-ndjson",
            MediaType::Protobuf => "application/x-protobuf",
        })
        .collect::<Vec<_>>()
        .join(", ");
    match raw.and_then(MediaType::parse) {
        Some(m) if allowed.contains(&m) => Ok(m),
        _ => Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            format!(
                "content-type {} is not accepted here; use {names}",
                raw.map_or_else(|| "(none)".to_string(), |r| format!("{r:?}"))
            ),
        )),
    }
}

/// Reads the whole body, at most `limits.max_body_bytes` bytes, and un-gzips it when
/// `Content-Encoding: gzip` — again at most `max_body_bytes` bytes out, so a small
/// compressed body cannot expand into gigabytes (a gzip bomb).
///
/// # Errors
/// 413 `body_too_large` (declared, received or decompressed size over the limit);
/// 415 `unsupported_encoding` for a content encoding other than gzip/identity;
/// 400 `invalid_gzip` for a corrupt or truncated gzip stream; 400 `body_read` when
/// the client stops sending mid-body.
pub async fn read_body(
    headers: &HeaderMap,
    body: Body,
    limits: &Limits,
) -> Result<Bytes, ApiError> {
    let limit = limits.max_body_bytes;
    let too_large = |what: &str| {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            format!("{what} is over the limit of {limit} bytes"),
        )
    };
    let gzip = match headers
        .get(header::CONTENT_ENCODING)
        .map(|v| v.to_str().unwrap_or("?").trim().to_ascii_lowercase())
        .as_deref()
    {
        None | Some("") | Some("identity") => false,
        Some("gzip") | Some("x-gzip") => true,
        Some(other) => {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_encoding",
                format!("content-encoding {other:?} is not accepted; use gzip or none"),
            ));
        }
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large("body"));
    }
    let raw = match Limited::new(body, limit).collect().await {
        Ok(c) => c.to_bytes(),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => return Err(too_large("body")),
        Err(e) => {
            return Err(ApiError::bad_request(
                "body_read",
                format!("could not read the request body: {e}"),
            ));
        }
    };
    if !gzip {
        return Ok(raw);
    }
    gunzip_bounded(&raw, limit).map_err(|e| match e {
        GunzipError::TooLarge => too_large("decompressed body"),
        GunzipError::Corrupt(msg) => ApiError::bad_request(
            "invalid_gzip",
            format!("content-encoding is gzip but the body is not valid gzip: {msg}"),
        ),
    })
}

/// Why [`gunzip_bounded`] failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GunzipError {
    /// The output would be longer than the limit.
    TooLarge,
    /// Not a gzip stream, a bad checksum, or a truncated stream.
    Corrupt(String),
}

/// Decompresses gzip `data` (all members), stopping as soon as the output would
/// exceed `limit` bytes.
///
/// # Errors
/// [`GunzipError::TooLarge`] past `limit`; [`GunzipError::Corrupt`] for bad input.
pub fn gunzip_bounded(data: &[u8], limit: usize) -> Result<Bytes, GunzipError> {
    let mut out = Vec::with_capacity(data.len().saturating_mul(4).min(limit));
    let decoder = flate2::read::MultiGzDecoder::new(data);
    // One byte over the limit tells "exactly at the limit" from "over it".
    let mut bounded = decoder.take(limit as u64 + 1);
    bounded
        .read_to_end(&mut out)
        .map_err(|e| GunzipError::Corrupt(e.to_string()))?;
    if out.len() > limit {
        return Err(GunzipError::TooLarge);
    }
    Ok(Bytes::from(out))
}

/// Checks that `body` is UTF-8 and nests JSON arrays/objects at most `max_depth`
/// deep (a cheap byte scan, before any parser recursion).
///
/// # Errors
/// 400 `invalid_utf8` with the byte offset; 400 `too_deep`.
pub fn check_text(body: &[u8], max_depth: usize) -> Result<(), ApiError> {
    if let Err(e) = std::str::from_utf8(body) {
        return Err(ApiError::bad_request(
            "invalid_utf8",
            format!(
                "body is not UTF-8 (invalid byte at offset {})",
                e.valid_up_to()
            ),
        ));
    }
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for &b in body {
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'{' | b'[' => {
                depth += 1;
                if depth > max_depth {
                    return Err(ApiError::bad_request(
                        "too_deep",
                        format!("JSON nests deeper than {max_depth} levels"),
                    ));
                }
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            // NDJSON: a new line starts a new document.
            b'\n' => depth = 0,
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn gz(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(data).expect("write");
        e.finish().expect("finish")
    }

    #[test]
    fn gunzip_stops_at_the_limit() {
        let bomb = gz(&vec![b'a'; 10 * 1024 * 1024]);
        assert!(bomb.len() < 20 * 1024);
        assert_eq!(gunzip_bounded(&bomb, 1024), Err(GunzipError::TooLarge));
        let ok = gz(b"[1,2,3]");
        assert_eq!(gunzip_bounded(&ok, 7).expect("fits").as_ref(), b"[1,2,3]");
        assert_eq!(gunzip_bounded(&ok, 6), Err(GunzipError::TooLarge));
    }

    #[test]
    fn truncated_gzip_is_corrupt() {
        let g = gz(b"{\"message\":\"hello\"}");
        assert!(matches!(
            gunzip_bounded(&g[..g.len() - 6], 1 << 20),
            Err(GunzipError::Corrupt(_))
        ));
    }

    #[test]
    fn depth_ignores_brackets_in_strings() {
        assert!(check_text(br#"{"a":"[[[[[[[[[[[["}"#, 2).is_ok());
        assert!(check_text(b"[[[1]]]", 3).is_ok());
        assert_eq!(
            check_text(b"[[[[1]]]]", 3).expect_err("deep").code,
            "too_deep"
        );
        assert_eq!(
            check_text(b"\xff", 3).expect_err("utf8").code,
            "invalid_utf8"
        );
    }
}
