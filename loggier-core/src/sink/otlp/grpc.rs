//! OTLP/gRPC delivery through tonic's generated `LogsServiceClient`
//! ([spec](https://opentelemetry.io/docs/specs/otlp/#otlpgrpc)).

use std::time::Duration;

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::logs::v1::logs_service_client::LogsServiceClient;
use prost::Message;
use tonic::codec::CompressionEncoding;
use tonic::metadata::{AsciiMetadataKey, AsciiMetadataValue, MetadataMap};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};
use tonic::{Code, Status};
use tonic_types::StatusExt;

use super::{OtlpCompression, OtlpPartialSuccess, REDACTED, raw_protobuf};
use crate::error::ConfigError;
use crate::sink::http_transport::MAX_RETRY_AFTER;
use crate::sink::{Payload, SendOutcome};

/// Extra time past the gRPC deadline before the local timer gives up, so the server's
/// `DEADLINE_EXCEEDED` (with its message) normally arrives first.
const DEADLINE_GRACE: Duration = Duration::from_millis(500);

pub(super) struct GrpcTarget {
    target: String,
    endpoint: Endpoint,
    metadata: MetadataMap,
    timeout: Duration,
    compression: OtlpCompression,
    /// Created on the first send: a tonic `Channel` spawns its connection task on the
    /// current tokio runtime, which only exists on the worker thread. Rebuilt when the
    /// sink finds itself on another runtime (the old one, and the channel's task with
    /// it, may be gone) or the channel reports it is no longer usable.
    client: Option<(tokio::runtime::Id, LogsServiceClient<Channel>)>,
}

impl GrpcTarget {
    /// Checks the target URL and headers. An `https://` target gets TLS (rustls):
    /// the server certificate must chain to `ca_pem` when given (PEM, one or more
    /// CA certificates; only those are trusted), else to the system's CA store
    /// (`rustls-native-certs`: `SSL_CERT_FILE`/`SSL_CERT_DIR` when set, else the
    /// platform's store), or Mozilla's roots (`webpki-roots`) when the system has
    /// none; and it must name the URL's host. ALPN must select `h2`.
    pub(super) fn new(
        target: &str,
        target_setting: &'static str,
        headers: &[(String, String)],
        headers_setting: &'static str,
        timeout: Duration,
        compression: OtlpCompression,
        ca_pem: Option<&[u8]>,
    ) -> Result<Self, ConfigError> {
        // The target as shown in errors: a `user:password@` password is never echoed.
        let shown = crate::sink::endpoint::redact_url(target);
        let uri: tonic::codegen::http::Uri = target
            .parse()
            .map_err(|e| ConfigError::invalid(target_setting, &shown, format!("not a URL: {e}")))?;
        let tls = match uri.scheme_str() {
            Some("http") => false,
            Some("https") => true,
            _ => {
                return Err(ConfigError::invalid(
                    target_setting,
                    &shown,
                    "expected an http:// or https:// URL such as http://localhost:4317",
                ));
            }
        };
        if uri.host().is_none_or(str::is_empty) {
            return Err(ConfigError::invalid(
                target_setting,
                &shown,
                "the URL has no host",
            ));
        }
        let mut endpoint = Endpoint::from(uri)
            .timeout(timeout)
            .connect_timeout(timeout)
            .user_agent(concat!("loggier/", env!("CARGO_PKG_VERSION")))
            .map_err(|e| ConfigError::invalid(target_setting, &shown, e.to_string()))?;
        if tls {
            let config = ClientTlsConfig::new().timeout(timeout);
            let describe = |e: tonic::transport::Error| {
                let mut detail = e.to_string();
                crate::sink::http_transport::push_error_sources(
                    &mut detail,
                    std::error::Error::source(&e),
                );
                detail
            };
            endpoint =
                match ca_pem {
                    Some(pem) => endpoint
                        .tls_config(config.ca_certificate(Certificate::from_pem(pem)))
                        // With a CA set, that is what failed to load.
                        .map_err(|e| {
                            ConfigError::invalid(
                                super::CA_SETTING,
                                &shown,
                                format!("TLS setup failed: {}", describe(e)),
                            )
                        })?,
                    // The system's store, as OTLP/HTTP (reqwest) trusts it; it is read
                    // here, once. Without one (a slim container: no CA file, or
                    // `SSL_CERT_FILE` naming a file without certificates), Mozilla's
                    // roots compiled in, as OTLP/HTTP falls back too.
                    None => match endpoint
                        .clone()
                        .tls_config(config.clone().with_native_roots())
                    {
                        Ok(e) => e,
                        Err(native) => endpoint.tls_config(config.with_webpki_roots()).map_err(
                            |e| {
                                ConfigError::invalid(
                                    target_setting,
                                    &shown,
                                    format!(
                                        "TLS setup failed: system store: {}; built-in roots: {}",
                                        describe(native),
                                        describe(e)
                                    ),
                                )
                            },
                        )?,
                    },
                };
        } else if ca_pem.is_some() {
            return Err(ConfigError::invalid(
                target_setting,
                &shown,
                "a CA certificate is set but the URL is http:// (plaintext); use https://",
            ));
        }

        let mut metadata = MetadataMap::new();
        for (i, (k, v)) in headers.iter().enumerate() {
            let key =
                AsciiMetadataKey::from_bytes(k.to_ascii_lowercase().as_bytes()).map_err(|_| {
                    ConfigError::invalid(
                        headers_setting,
                        REDACTED,
                        format!(
                            "header {} has a name gRPC metadata cannot carry: {k:?}",
                            i + 1
                        ),
                    )
                })?;
            let mut value = AsciiMetadataValue::try_from(v.as_str()).map_err(|_| {
                ConfigError::invalid(
                    headers_setting,
                    REDACTED,
                    format!(
                        "the value of header {k:?} contains characters gRPC metadata cannot carry"
                    ),
                )
            })?;
            value.set_sensitive(true);
            metadata.append(key, value);
        }
        Ok(GrpcTarget {
            target: target.to_string(),
            endpoint,
            metadata,
            timeout,
            compression,
            client: None,
        })
    }

    pub(super) fn target(&self) -> &str {
        &self.target
    }

    pub(super) async fn send(
        &mut self,
        payload: &Payload,
        partial: &OtlpPartialSuccess,
    ) -> SendOutcome {
        let message = match raw_protobuf(&payload.bytes).and_then(|raw| {
            ExportLogsServiceRequest::decode(raw.as_slice())
                .map_err(|e| format!("stored payload is not an ExportLogsServiceRequest: {e}"))
        }) {
            Ok(m) => m,
            Err(reason) => return SendOutcome::Reject { reason },
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return SendOutcome::Retry {
                reason: "grpc send outside a tokio runtime".to_string(),
                retry_after: None,
            };
        };
        if self
            .client
            .as_ref()
            .is_some_and(|(id, _)| *id != runtime.id())
        {
            self.client = None;
        }
        let (_, client) = self.client.get_or_insert_with(|| {
            let mut c = LogsServiceClient::new(self.endpoint.connect_lazy());
            if self.compression == OtlpCompression::Gzip {
                c = c
                    .send_compressed(CompressionEncoding::Gzip)
                    .accept_compressed(CompressionEncoding::Gzip);
            }
            (runtime.id(), c)
        });
        let mut request = tonic::Request::new(message);
        *request.metadata_mut() = self.metadata.clone();
        request.set_timeout(self.timeout);
        match tokio::time::timeout(self.timeout + DEADLINE_GRACE, client.export(request)).await {
            Err(_) => SendOutcome::Retry {
                reason: format!("grpc timeout after {} ms", self.timeout.as_millis()),
                retry_after: None,
            },
            Ok(Ok(resp)) => {
                if let Some(ps) = resp.into_inner().partial_success {
                    partial.record(ps.rejected_log_records, &ps.error_message);
                }
                SendOutcome::Delivered
            }
            Ok(Err(status)) if is_local_channel_failure(&status) => {
                // Our channel broke, the collector said nothing: start a fresh one.
                self.client = None;
                SendOutcome::Retry {
                    reason: format!("grpc channel failed: {}", error_chain(&status)),
                    retry_after: None,
                }
            }
            Ok(Err(status)) => classify(&status),
        }
    }
}

/// `true` for the `UNKNOWN` status tonic's generated client makes when its channel
/// cannot be polled ready ("Service was not ready: …", e.g. the channel's background
/// task is gone), and the one it makes from a transport error of its own (the
/// connection broke mid-call, or the peer does not speak the same protocol: a
/// plaintext channel to a TLS port): a failure on our side of the wire, not an
/// answer from the collector, so the batch is retried instead of rejected. A status
/// the collector sent has no source error.
fn is_local_channel_failure(status: &Status) -> bool {
    if status.code() != Code::Unknown {
        return false;
    }
    if status.message().starts_with("Service was not ready") {
        return true;
    }
    let mut source = std::error::Error::source(status);
    while let Some(e) = source {
        if e.is::<tonic::transport::Error>() {
            return true;
        }
        source = e.source();
    }
    false
}

/// The status message followed by its source errors, `: `-separated.
fn error_chain(status: &Status) -> String {
    let mut text = status.message().to_string();
    crate::sink::http_transport::push_error_sources(&mut text, std::error::Error::source(status));
    text
}

/// gRPC status handling per
/// [OTLP/gRPC failures](https://opentelemetry.io/docs/specs/otlp/#failures):
/// retryable codes retry (with the `RetryInfo` delay, capped at 5 minutes),
/// `RESOURCE_EXHAUSTED` only when the server sent `RetryInfo`, the rest reject.
pub(super) fn classify(status: &Status) -> SendOutcome {
    let code = status.code();
    let reason = if status.message().is_empty() {
        format!("grpc {code:?}")
    } else {
        format!("grpc {code:?}: {}", status.message())
    };
    let retry_info = status.get_details_retry_info();
    let retry_after = retry_info
        .as_ref()
        .and_then(|ri| ri.retry_delay)
        .map(|d| d.min(MAX_RETRY_AFTER));
    let retryable = match code {
        Code::Unavailable
        | Code::Cancelled
        | Code::DeadlineExceeded
        | Code::Aborted
        | Code::OutOfRange
        | Code::DataLoss => true,
        Code::ResourceExhausted => retry_info.is_some(),
        _ => false,
    };
    if retryable {
        SendOutcome::Retry {
            reason,
            retry_after,
        }
    } else {
        SendOutcome::Reject { reason }
    }
}

#[cfg(test)]
mod tests {
    use tonic_types::ErrorDetails;

    use super::*;

    #[test]
    fn codes_follow_the_otlp_spec() {
        for code in [
            Code::Unavailable,
            Code::Cancelled,
            Code::DeadlineExceeded,
            Code::Aborted,
            Code::OutOfRange,
            Code::DataLoss,
        ] {
            assert!(
                matches!(classify(&Status::new(code, "x")), SendOutcome::Retry { .. }),
                "{code:?}"
            );
        }
        for code in [
            Code::ResourceExhausted,
            Code::InvalidArgument,
            Code::Unauthenticated,
            Code::PermissionDenied,
            Code::Unimplemented,
            Code::Internal,
            Code::Unknown,
        ] {
            assert!(
                matches!(
                    classify(&Status::new(code, "x")),
                    SendOutcome::Reject { .. }
                ),
                "{code:?}"
            );
        }
        let with_info = Status::with_error_details(
            Code::ResourceExhausted,
            "slow down",
            ErrorDetails::with_retry_info(Some(Duration::from_secs(7))),
        );
        assert_eq!(
            classify(&with_info),
            SendOutcome::Retry {
                reason: "grpc ResourceExhausted: slow down".into(),
                retry_after: Some(Duration::from_secs(7)),
            }
        );
    }

    #[test]
    fn a_channel_that_cannot_get_ready_is_ours_to_fix_not_a_rejection() {
        let st = Status::unknown("Service was not ready: transport error");
        assert!(is_local_channel_failure(&st));
        assert!(!is_local_channel_failure(&Status::unknown("collector bug")));
        assert!(!is_local_channel_failure(&Status::unavailable(
            "Service was not ready"
        )));
    }

    #[test]
    fn targets_are_validated() {
        let ok = |t: &str| {
            GrpcTarget::new(
                t,
                "otlp_endpoint",
                &[],
                "otlp_headers",
                Duration::from_secs(1),
                OtlpCompression::None,
                None,
            )
        };
        assert!(ok("http://localhost:4317").is_ok());
        assert!(ok("https://collector:4317").is_ok());
        for bad in [
            "ftp://collector:4317",
            "collector:4317",
            "http://",
            "not a url",
        ] {
            let e = ok(bad).err().unwrap_or_else(|| panic!("{bad} must fail"));
            assert_eq!(e.setting(), "otlp_endpoint");
        }
        let e = GrpcTarget::new(
            "http://localhost:4317",
            "otlp_endpoint",
            &[("key-bin".into(), "s3cr3t".into())],
            "OTEL_EXPORTER_OTLP_HEADERS",
            Duration::from_secs(1),
            OtlpCompression::None,
            None,
        )
        .err()
        .expect("binary keys are refused");
        assert_eq!(e.setting(), "OTEL_EXPORTER_OTLP_HEADERS");
        assert!(!e.to_string().contains("s3cr3t"));
    }
}
