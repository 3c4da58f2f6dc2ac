//! OTLP/HTTP binary protobuf delivery
//! ([spec](https://opentelemetry.io/docs/specs/otlp/#otlphttp)).

use std::time::Duration;

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceResponse;
use prost::Message;
use reqwest::header::{CONTENT_ENCODING, CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};

use super::{OtlpPartialSuccess, REDACTED, is_gzip};
use crate::error::ConfigError;
use crate::sink::http_transport::{HttpReply, HttpTransport, body_excerpt};
use crate::sink::{BoxFuture, Payload, SendOutcome};

const PROTOBUF: &str = "application/x-protobuf";

pub(super) struct HttpTarget {
    url: String,
    transport: HttpTransport,
}

impl HttpTarget {
    pub(super) fn new(
        url: String,
        url_setting: &'static str,
        headers: &[(String, String)],
        headers_setting: &'static str,
        timeout: Duration,
    ) -> Result<Self, ConfigError> {
        validate_http_url(&url, url_setting)?;
        let mut map = HeaderMap::new();
        for (i, (k, v)) in headers.iter().enumerate() {
            let name = HeaderName::from_bytes(k.as_bytes()).map_err(|_| {
                ConfigError::invalid(
                    headers_setting,
                    REDACTED,
                    format!("header {} has an invalid name {k:?}", i + 1),
                )
            })?;
            let mut value = HeaderValue::from_str(v).map_err(|_| {
                ConfigError::invalid(
                    headers_setting,
                    REDACTED,
                    format!("the value of header {k:?} contains characters HTTP cannot carry"),
                )
            })?;
            value.set_sensitive(true);
            map.append(name, value);
        }
        // The timeout was checked by the builder (naming its own setting); what is
        // left to fail here is the TLS backend.
        let transport = HttpTransport::new(timeout, map)?;
        Ok(HttpTarget { url, transport })
    }

    pub(super) fn url(&self) -> &str {
        &self.url
    }

    /// [`HttpTarget::send`] through a future that owns a handle to the client, the
    /// URL, the payload and the partial-success counters (shared), for
    /// [`Sink::send_detached`](crate::Sink::send_detached).
    pub(super) fn send_detached(
        &self,
        payload: &Payload,
        partial: &OtlpPartialSuccess,
    ) -> BoxFuture<'static, SendOutcome> {
        let target = HttpTarget {
            url: self.url.clone(),
            transport: self.transport.clone(),
        };
        let payload = payload.clone();
        let partial = partial.clone();
        Box::pin(async move { target.send(&payload, &partial).await })
    }

    pub(super) async fn send(
        &self,
        payload: &Payload,
        partial: &OtlpPartialSuccess,
    ) -> SendOutcome {
        let mut extra = vec![(CONTENT_TYPE, HeaderValue::from_static(PROTOBUF))];
        if is_gzip(&payload.bytes) {
            extra.push((CONTENT_ENCODING, HeaderValue::from_static("gzip")));
        }
        match self
            .transport
            .post_for_reply(&self.url, payload.id, payload.bytes.clone(), &extra)
            .await
        {
            Ok(reply) => classify(&reply, partial),
            Err(reason) => SendOutcome::Retry {
                reason,
                retry_after: None,
            },
        }
    }
}

fn validate_http_url(url: &str, setting: &'static str) -> Result<(), ConfigError> {
    // The URL as shown in errors: a `user:password@` password is never echoed.
    let shown = crate::sink::endpoint::redact_url(url);
    let parsed = reqwest::Url::parse(url)
        .map_err(|e| ConfigError::invalid(setting, &shown, format!("not a URL: {e}")))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(ConfigError::invalid(
            setting,
            &shown,
            "the scheme must be http or https",
        ));
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(ConfigError::invalid(setting, &shown, "the URL has no host"));
    }
    Ok(())
}

/// OTLP/HTTP response handling
/// ([failures](https://opentelemetry.io/docs/specs/otlp/#failures-1)): 2xx delivered
/// (partial success counted), 429/502/503/504 retried, everything else rejected.
pub(super) fn classify(reply: &HttpReply, partial: &OtlpPartialSuccess) -> SendOutcome {
    let status = reply.status;
    if (200..300).contains(&status) {
        if !reply.body.is_empty() {
            // A body that does not decode is ignored: the export itself succeeded.
            if let Ok(resp) = ExportLogsServiceResponse::decode(reply.body.as_ref()) {
                if let Some(ps) = resp.partial_success {
                    partial.record(ps.rejected_log_records, &ps.error_message);
                }
            }
        }
        return SendOutcome::Delivered;
    }
    let message = error_message(reply);
    let reason = if message.is_empty() {
        format!("http {status}")
    } else {
        format!("http {status}: {message}")
    };
    if matches!(status, 429 | 502 | 503 | 504) {
        SendOutcome::Retry {
            reason,
            retry_after: reply.retry_after,
        }
    } else {
        SendOutcome::Reject { reason }
    }
}

/// The message of an error response: the `google.rpc.Status` the spec puts in
/// protobuf error bodies, else the first 512 bytes of the body as text.
fn error_message(reply: &HttpReply) -> String {
    let is_protobuf = reply
        .content_type
        .as_deref()
        .is_some_and(|ct| ct.contains("protobuf"));
    if is_protobuf {
        if let Ok(st) = tonic_types::Status::decode(reply.body.as_ref()) {
            if !st.message.is_empty() {
                return body_excerpt(st.message.as_bytes(), 512);
            }
        }
    }
    body_excerpt(&reply.body, 512)
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsPartialSuccess;

    use super::*;

    fn reply(status: u16, ct: Option<&str>, body: Vec<u8>) -> HttpReply {
        HttpReply {
            status,
            retry_after: None,
            content_type: ct.map(str::to_string),
            body: Bytes::from(body),
        }
    }

    #[test]
    fn statuses_follow_the_otlp_spec() {
        let p = OtlpPartialSuccess::default();
        for s in [429, 502, 503, 504] {
            assert!(
                matches!(
                    classify(&reply(s, None, vec![]), &p),
                    SendOutcome::Retry { .. }
                ),
                "{s}"
            );
        }
        for s in [400, 401, 403, 404, 408, 413, 500, 501] {
            assert!(
                matches!(
                    classify(&reply(s, None, vec![]), &p),
                    SendOutcome::Reject { .. }
                ),
                "{s}"
            );
        }
        assert_eq!(
            classify(&reply(200, None, vec![]), &p),
            SendOutcome::Delivered
        );
    }

    #[test]
    fn rpc_status_message_is_reported() {
        let st = tonic_types::Status {
            code: 3,
            message: "log record too large".into(),
            details: vec![],
        };
        let out = classify(
            &reply(400, Some(PROTOBUF), st.encode_to_vec()),
            &OtlpPartialSuccess::default(),
        );
        assert_eq!(
            out,
            SendOutcome::Reject {
                reason: "http 400: log record too large".into()
            }
        );
        let out = classify(
            &reply(400, Some("text/plain"), b"bad things".to_vec()),
            &OtlpPartialSuccess::default(),
        );
        assert_eq!(
            out,
            SendOutcome::Reject {
                reason: "http 400: bad things".into()
            }
        );
    }

    #[test]
    fn partial_success_is_counted() {
        let p = OtlpPartialSuccess::default();
        let body = ExportLogsServiceResponse {
            partial_success: Some(ExportLogsPartialSuccess {
                rejected_log_records: 3,
                error_message: "3 records had no body".into(),
            }),
        }
        .encode_to_vec();
        assert_eq!(
            classify(&reply(200, Some(PROTOBUF), body), &p),
            SendOutcome::Delivered
        );
        assert_eq!(p.rejected_log_records(), 3);
        assert_eq!(p.responses(), 1);
        assert_eq!(
            p.last_error_message().as_deref(),
            Some("3 records had no body")
        );
        // An empty partial_success is a plain success.
        let empty = ExportLogsServiceResponse {
            partial_success: Some(ExportLogsPartialSuccess::default()),
        }
        .encode_to_vec();
        classify(&reply(200, Some(PROTOBUF), empty), &p);
        assert_eq!(p.responses(), 1);
    }

    #[test]
    fn urls_are_validated() {
        assert!(validate_http_url("http://localhost:4318/v1/logs", "x").is_ok());
        assert!(validate_http_url("https://otlp.example.com/v1/logs", "x").is_ok());
        for bad in [
            "localhost:4318",
            "ftp://x/v1/logs",
            "http://:4318/v1/logs",
            "",
        ] {
            let e = validate_http_url(bad, "OTEL_EXPORTER_OTLP_ENDPOINT").expect_err(bad);
            assert_eq!(e.setting(), "OTEL_EXPORTER_OTLP_ENDPOINT");
        }
    }
}
