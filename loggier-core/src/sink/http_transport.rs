//! The HTTP client every network sink shares: one `POST`, one classified outcome.

use std::time::{Duration, SystemTime};

use bytes::Bytes;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};

use super::{Payload, SendOutcome};
use crate::error::ConfigError;

/// Default request timeout: 5 s (the Loggier `http_timeout` default, seeds/004).
pub const DEFAULT_HTTP_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest `Retry-After` honoured: 5 minutes. A larger value is capped so one bad
/// header cannot park a sink for hours.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(300);
/// Header carrying the batch id, so receivers can de-duplicate replays.
pub const BATCH_ID_HEADER: &str = "x-loggier-batch-id";
/// Most bytes read from the body of a non-2xx response: 4 KiB. Only an excerpt goes
/// into the error message; the rest is never read (the connection is closed instead),
/// so a broken or hostile endpoint cannot make the sink buffer megabytes.
pub const MAX_ERROR_BODY_BYTES: usize = 4 * 1024;
/// Most bytes read from the body of a 2xx answer to a `POST`: 64 KiB (an OTLP
/// partial-success message is a few hundred bytes; Loki and Vector answer with an
/// empty body).
pub const MAX_REPLY_BODY_BYTES: usize = 64 * 1024;
/// Default most bytes of a 2xx `GET` answer ([`HttpTransport::get`], the Loki query
/// client): 32 MiB. A larger answer is an error, not a silently cut one.
pub const DEFAULT_MAX_RESPONSE_BYTES: usize = 32 * 1024 * 1024;

/// A `POST`-only HTTP client with the retry classification all network sinks share.
///
/// Classification of a response (Loki, OTLP/HTTP and Vector agree on it):
/// - 2xx → [`SendOutcome::Delivered`];
/// - connection errors, timeouts, 408, 429, 500, 502, 503, 504 → [`SendOutcome::Retry`]
///   with the server's `Retry-After` (delta-seconds or HTTP-date, capped at
///   [`MAX_RETRY_AFTER`]);
/// - any other status → [`SendOutcome::Reject`] with the status and the first 512
///   bytes of the response body.
///
/// Response bodies are read only as far as they are used: at most
/// [`MAX_ERROR_BODY_BYTES`] of an error answer and [`MAX_REPLY_BODY_BYTES`] of a 2xx
/// answer to a `POST`; the connection is dropped rather than drained past that.
///
/// Every request carries `X-Loggier-Batch-Id: <payload id>`. Redirects are not
/// followed (a log endpoint that redirects is misconfigured; the 3xx is reported).
///
/// The client must be used from inside a tokio runtime (the Loggier worker thread
/// provides one).
///
/// # TLS
/// `https://` endpoints use rustls (reqwest's `rustls` feature: the aws-lc-rs crypto
/// provider, built from source with the C compiler only, and the operating system's
/// certificate store through `rustls-platform-verifier`; when the system has no CA
/// store, as in slim containers, Mozilla's roots compiled in from `webpki-root-certs`
/// are used instead). No system OpenSSL,
/// `pkg-config` or `cmake` is needed. To use the platform's TLS library instead
/// (OpenSSL on Linux, Secure Transport on macOS, SChannel on Windows), opt in from the
/// application's `Cargo.toml`:
///
/// ```toml
/// reqwest = { version = "0.13", default-features = false, features = ["native-tls"] }
/// ```
///
/// reqwest then prefers native TLS for every client it builds, this one included.
/// It is not a feature of this crate, so `--all-features` builds never need OpenSSL.
#[derive(Clone)]
pub struct HttpTransport {
    client: reqwest::Client,
    headers: HeaderMap,
}

/// Header names only: the values carry credentials (auth, API keys, proxy keys) even
/// when a caller forgot to mark them sensitive.
impl std::fmt::Debug for HttpTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpTransport")
            .field(
                "headers",
                &self
                    .headers
                    .keys()
                    .map(HeaderName::as_str)
                    .collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

impl HttpTransport {
    /// A transport with the given per-request timeout and extra headers sent on every
    /// request (auth, tenant, content type).
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] for setting `http_timeout` when it is zero, or
    /// `http_client` when the TLS backend cannot be initialised.
    pub fn new(timeout: Duration, headers: HeaderMap) -> Result<Self, ConfigError> {
        if timeout.is_zero() {
            return Err(ConfigError::invalid(
                "http_timeout",
                "0s",
                "must be greater than zero",
            ));
        }
        let builder = || {
            reqwest::Client::builder()
                .timeout(timeout)
                .connect_timeout(timeout)
                .redirect(reqwest::redirect::Policy::none())
                .user_agent(concat!("loggier/", env!("CARGO_PKG_VERSION")))
        };
        let client = match builder().build() {
            Ok(client) => client,
            // rustls loads the system's CA store here and fails when there is none
            // (a slim container): fall back to Mozilla's roots compiled in, so the sink
            // still builds, plain `http://` works and `https://` verifies as usual.
            Err(first) => builder()
                .tls_certs_only(
                    webpki_root_certs::TLS_SERVER_ROOT_CERTS
                        .iter()
                        .filter_map(|c| reqwest::Certificate::from_der(c.as_ref()).ok()),
                )
                .build()
                .map_err(|e| {
                    ConfigError::invalid(
                        "http_client",
                        "reqwest",
                        format!(
                            "{}; with the built-in CA roots: {}",
                            describe_reqwest_error(&first),
                            describe_reqwest_error(&e)
                        ),
                    )
                })?,
        };
        Ok(HttpTransport { client, headers })
    }

    /// The fixed headers sent on every request.
    pub fn headers(&self) -> &HeaderMap {
        &self.headers
    }

    /// `POST`s `body` (the payload's bytes unless given) to `url` with the fixed
    /// headers, `extra` headers and the batch id, and classifies the result.
    pub async fn post(
        &self,
        url: &str,
        payload: &Payload,
        extra: &[(HeaderName, HeaderValue)],
    ) -> SendOutcome {
        self.post_bytes(url, payload.id, payload.bytes.clone(), extra)
            .await
    }

    /// Like [`HttpTransport::post`] with an explicit body.
    pub async fn post_bytes(
        &self,
        url: &str,
        batch_id: uuid::Uuid,
        body: Bytes,
        extra: &[(HeaderName, HeaderValue)],
    ) -> SendOutcome {
        match self.post_for_reply(url, batch_id, body, extra).await {
            Ok(reply) => reply.classify(),
            Err(reason) => SendOutcome::Retry {
                reason,
                retry_after: None,
            },
        }
    }

    /// `POST`s `body` like [`HttpTransport::post_bytes`] but returns the response
    /// unclassified, for protocols that read 2xx bodies or classify statuses their own
    /// way (OTLP partial success, OTLP's narrower retry set). At most
    /// [`MAX_REPLY_BODY_BYTES`] of a 2xx body and [`MAX_ERROR_BODY_BYTES`] of any other
    /// are read; the rest is left unread and the connection closed.
    ///
    /// # Errors
    /// A description of the network failure (connection, timeout, or a 2xx body that
    /// could not be read); callers treat it as retryable. A failure while reading the
    /// body of an error answer keeps the bytes read so far.
    pub async fn post_for_reply(
        &self,
        url: &str,
        batch_id: uuid::Uuid,
        body: Bytes,
        extra: &[(HeaderName, HeaderValue)],
    ) -> Result<HttpReply, String> {
        let mut req = self
            .client
            .post(url)
            .headers(self.headers.clone())
            .body(body);
        for (k, v) in extra {
            req = req.header(k, v);
        }
        req = req.header(BATCH_ID_HEADER, batch_id.to_string());
        let mut resp = req.send().await.map_err(|e| describe_reqwest_error(&e))?;
        let status = resp.status().as_u16();
        let header_text = |name: reqwest::header::HeaderName| {
            resp.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let retry_after = header_text(reqwest::header::RETRY_AFTER)
            .and_then(|v| parse_retry_after(&v, SystemTime::now()));
        let content_type = header_text(reqwest::header::CONTENT_TYPE);
        let body = if (200..300).contains(&status) {
            let (body, end) = read_capped(&mut resp, MAX_REPLY_BODY_BYTES).await;
            end?;
            body
        } else {
            read_error_body(&mut resp).await
        };
        Ok(HttpReply {
            status,
            retry_after,
            content_type,
            body,
        })
    }

    /// `GET`s `url` with the fixed headers and returns the status and body, for health
    /// probes and query clients; [`HttpTransport::get_limited`] with
    /// [`DEFAULT_MAX_RESPONSE_BYTES`].
    ///
    /// # Errors
    /// As [`HttpTransport::get_limited`].
    pub async fn get(&self, url: &str) -> Result<(u16, Bytes), String> {
        self.get_limited(url, DEFAULT_MAX_RESPONSE_BYTES).await
    }

    /// `GET`s `url` with the fixed headers and returns the status and body. A 2xx
    /// body may be at most `max_body_bytes` long; of any other answer at most
    /// [`MAX_ERROR_BODY_BYTES`] are read (for the error message).
    ///
    /// # Errors
    /// A description of the network failure, or of a 2xx body longer than
    /// `max_body_bytes` (reading stops there).
    pub async fn get_limited(
        &self,
        url: &str,
        max_body_bytes: usize,
    ) -> Result<(u16, Bytes), String> {
        let mut resp = self
            .client
            .get(url)
            .headers(self.headers.clone())
            .send()
            .await
            .map_err(|e| describe_reqwest_error(&e))?;
        let status = resp.status().as_u16();
        if !(200..300).contains(&status) {
            return Ok((status, read_error_body(&mut resp).await));
        }
        let (body, end) = read_capped(&mut resp, max_body_bytes).await;
        if !end? {
            return Err(format!(
                "response body is larger than {max_body_bytes} bytes; not read further"
            ));
        }
        Ok((status, body))
    }
}

/// Reads `resp`'s body up to `cap` bytes, chunk by chunk. Returns the bytes read
/// and how the read ended: `Ok(true)` the body ended within the cap, `Ok(false)`
/// more was coming and was left unread (dropping the response then closes the
/// connection), `Err` the read failed (the bytes are what arrived before).
async fn read_capped(resp: &mut reqwest::Response, cap: usize) -> (Bytes, Result<bool, String>) {
    let mut buf: Vec<u8> = Vec::new();
    let end = loop {
        match resp.chunk().await {
            Ok(Some(chunk)) => {
                let room = cap - buf.len();
                if chunk.len() > room {
                    buf.extend_from_slice(&chunk[..room]);
                    break Ok(false);
                }
                buf.extend_from_slice(&chunk);
            }
            Ok(None) => break Ok(true),
            Err(e) => break Err(describe_reqwest_error(&e)),
        }
    };
    (Bytes::from(buf), end)
}

/// At most [`MAX_ERROR_BODY_BYTES`] of an error answer's body; a read failure keeps
/// what arrived before it (the status is what matters).
async fn read_error_body(resp: &mut reqwest::Response) -> Bytes {
    read_capped(resp, MAX_ERROR_BODY_BYTES).await.0
}

/// A response as received by [`HttpTransport::post_for_reply`], before classification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpReply {
    /// HTTP status code.
    pub status: u16,
    /// The `Retry-After` delay, parsed like [`parse_retry_after`] (capped at
    /// [`MAX_RETRY_AFTER`]), when the server sent a valid one.
    pub retry_after: Option<Duration>,
    /// The `Content-Type` header, when present and valid text.
    pub content_type: Option<String>,
    /// The response body as far as it was read: at most [`MAX_REPLY_BODY_BYTES`] of a
    /// 2xx answer, at most [`MAX_ERROR_BODY_BYTES`] of any other.
    pub body: Bytes,
}

impl HttpReply {
    /// The shared classification (see [`HttpTransport`]): 2xx delivered; 408, 429,
    /// 500, 502, 503, 504 retried with `retry_after`; anything else rejected. The
    /// reason carries the status and the first 512 bytes of the body.
    pub fn classify(&self) -> SendOutcome {
        let status = self.status;
        if (200..300).contains(&status) {
            return SendOutcome::Delivered;
        }
        let excerpt = body_excerpt(&self.body, 512);
        let reason = if excerpt.is_empty() {
            format!("http {status}")
        } else {
            format!("http {status}: {excerpt}")
        };
        if is_retryable_status(status) {
            SendOutcome::Retry {
                reason,
                retry_after: self.retry_after,
            }
        } else {
            SendOutcome::Reject { reason }
        }
    }
}

/// `true` for the statuses that mean "try again later": 408, 429, 500, 502, 503, 504.
pub fn is_retryable_status(status: u16) -> bool {
    matches!(status, 408 | 429 | 500 | 502 | 503 | 504)
}

fn describe_reqwest_error(e: &reqwest::Error) -> String {
    use std::error::Error as _;
    let what = if e.is_timeout() {
        "timeout"
    } else if e.is_connect() {
        "connection failed"
    } else {
        "request failed"
    };
    let mut msg = format!("{what}: {e}");
    push_error_sources(&mut msg, e.source());
    msg
}

/// Appends `source` and each error below it to `text` as `": part"`, skipping a part
/// whose text is already in `text` (some errors repeat their source in their own
/// message), for one-line error reports in `last_error` and on stderr.
pub(crate) fn push_error_sources(
    text: &mut String,
    source: Option<&(dyn std::error::Error + 'static)>,
) {
    let mut src = source;
    while let Some(e) = src {
        let part = e.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        src = e.source();
    }
}

/// The first `max` bytes of `body` as text (lossy UTF-8, trimmed), for error reports.
pub fn body_excerpt(body: &[u8], max: usize) -> String {
    let cut = &body[..body.len().min(max)];
    String::from_utf8_lossy(cut).trim().to_string()
}

/// Parses an HTTP `Retry-After` value (RFC 9110 §10.2.3): delta-seconds or an
/// HTTP-date, relative to `now`. The result is capped at [`MAX_RETRY_AFTER`]; a date
/// in the past gives zero. `None` for a value that is neither.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let v = value.trim();
    let d = if let Ok(secs) = v.parse::<u64>() {
        Duration::from_secs(secs)
    } else {
        let when = httpdate::parse_http_date(v).ok()?;
        when.duration_since(now).unwrap_or(Duration::ZERO)
    };
    Some(d.min(MAX_RETRY_AFTER))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_seconds_dates_and_caps() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(parse_retry_after("7", now), Some(Duration::from_secs(7)));
        assert_eq!(parse_retry_after("86400", now), Some(MAX_RETRY_AFTER));
        let later = httpdate::fmt_http_date(now + Duration::from_secs(30));
        assert_eq!(
            parse_retry_after(&later, now),
            Some(Duration::from_secs(30))
        );
        let past = httpdate::fmt_http_date(now - Duration::from_secs(30));
        assert_eq!(parse_retry_after(&past, now), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("soon", now), None);
    }

    #[test]
    fn retryable_statuses() {
        for s in [408, 429, 500, 502, 503, 504] {
            assert!(is_retryable_status(s), "{s}");
        }
        for s in [400, 401, 403, 404, 413, 501] {
            assert!(!is_retryable_status(s), "{s}");
        }
    }
}
