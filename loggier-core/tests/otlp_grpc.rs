//! OTLP/gRPC sink against a loopback tonic `LogsService` server built from the
//! official `opentelemetry-proto` service definition.
#![cfg(feature = "otlp-grpc")]

mod otlp_support;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use loggier_core::{
    Level, Loggier, OtlpCompression, OtlpProtocol, OtlpSink, OtlpSinkBuilder, Record, SendOutcome,
};
use opentelemetry_proto::tonic::collector::logs::v1::logs_service_server::{
    LogsService, LogsServiceServer,
};
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsPartialSuccess, ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use otlp_support::{DEADLINE, attr, body_text, encode_and_send, service, str_attr, wait_until};
use tonic::codec::CompressionEncoding;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Identity, ServerTlsConfig};
use tonic::{Code, Request, Response, Status};
use tonic_types::{ErrorDetails, StatusExt};

#[derive(Debug, Clone)]
struct Got {
    metadata: tonic::metadata::MetadataMap,
    request: ExportLogsServiceRequest,
}

#[derive(Default)]
struct Shared {
    got: Mutex<Vec<Got>>,
    replies: Mutex<VecDeque<Result<ExportLogsServiceResponse, Status>>>,
}

struct Collector(Arc<Shared>);

#[tonic::async_trait]
impl LogsService for Collector {
    async fn export(
        &self,
        request: Request<ExportLogsServiceRequest>,
    ) -> Result<Response<ExportLogsServiceResponse>, Status> {
        let metadata = request.metadata().clone();
        self.0.got.lock().expect("lock").push(Got {
            metadata,
            request: request.into_inner(),
        });
        let next = self.0.replies.lock().expect("lock").pop_front();
        next.unwrap_or_else(|| Ok(ExportLogsServiceResponse::default()))
            .map(Response::new)
    }
}

struct GrpcCollector {
    addr: SocketAddr,
    shared: Arc<Shared>,
    rt: Option<tokio::runtime::Runtime>,
}

impl GrpcCollector {
    fn start() -> Self {
        Self::start_with(None)
    }

    /// A collector serving TLS with this certificate chain and key (PEM), or
    /// plaintext with `None`.
    fn start_with(tls: Option<(String, String)>) -> Self {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        let shared = Arc::new(Shared::default());
        let incoming = rt
            .block_on(async { TcpIncoming::bind("127.0.0.1:0".parse().expect("addr")) })
            .expect("bind");
        let addr = incoming.local_addr().expect("addr");
        let svc = LogsServiceServer::new(Collector(Arc::clone(&shared)))
            .accept_compressed(CompressionEncoding::Gzip);
        let mut server = tonic::transport::Server::builder();
        if let Some((cert, key)) = tls {
            server = server
                .tls_config(ServerTlsConfig::new().identity(Identity::from_pem(cert, key)))
                .expect("server tls config");
        }
        rt.spawn(async move {
            let _ = server.add_service(svc).serve_with_incoming(incoming).await;
        });
        GrpcCollector {
            addr,
            shared,
            rt: Some(rt),
        }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn script(&self, replies: impl IntoIterator<Item = Result<ExportLogsServiceResponse, Status>>) {
        self.shared.replies.lock().expect("lock").extend(replies);
    }

    fn got(&self) -> Vec<Got> {
        self.shared.got.lock().expect("lock").clone()
    }
}

impl Drop for GrpcCollector {
    fn drop(&mut self) {
        if let Some(rt) = self.rt.take() {
            rt.shutdown_timeout(Duration::from_secs(1));
        }
    }
}

fn grpc_sink(c: &GrpcCollector) -> OtlpSink {
    OtlpSink::builder()
        .protocol(OtlpProtocol::Grpc)
        .endpoint(c.url())
        .timeout(Duration::from_secs(5))
        .build()
        .expect("valid sink")
}

#[test]
fn grpc_export_carries_metadata_resource_severity_and_trace_ids() {
    let c = GrpcCollector::start();
    let url = c.url();
    let env = move |name: &str| -> Option<String> {
        match name {
            "OTEL_EXPORTER_OTLP_PROTOCOL" => Some("http/protobuf".into()),
            "OTEL_EXPORTER_OTLP_LOGS_PROTOCOL" => Some("grpc".into()),
            // gRPC uses the generic endpoint as is: no `/v1/logs`.
            "OTEL_EXPORTER_OTLP_ENDPOINT" => Some(url.clone()),
            "OTEL_EXPORTER_OTLP_HEADERS" => Some("x-api-key=k%20123".into()),
            "OTEL_EXPORTER_OTLP_COMPRESSION" => Some("gzip".into()),
            _ => None,
        }
    };
    let mut sink = OtlpSinkBuilder::from_env_lookup(env)
        .and_then(OtlpSinkBuilder::build)
        .expect("valid env");
    assert_eq!(sink.protocol(), OtlpProtocol::Grpc);
    let mut rec = Record::new(Level::Critical, "disk full")
        .with_timestamp_ns(1_700_000_000_123_456_789)
        .with_field("free_bytes", 0);
    rec.trace_id = Some("4bf92f3577b34da6a3ce929d0e0e4736".into());
    rec.span_id = Some("00f067aa0ba902b7".into());

    let out = encode_and_send(&mut sink, &[rec], &service());
    assert_eq!(out, vec![SendOutcome::Delivered]);

    let got = c.got();
    assert_eq!(got.len(), 1);
    assert_eq!(
        got[0]
            .metadata
            .get("x-api-key")
            .and_then(|v| v.to_str().ok()),
        Some("k 123")
    );
    assert_eq!(
        got[0]
            .metadata
            .get("grpc-encoding")
            .and_then(|v| v.to_str().ok()),
        Some("gzip"),
        "message compression on"
    );
    let rl = &got[0].request.resource_logs[0];
    let res = &rl.resource.as_ref().expect("resource").attributes;
    assert_eq!(str_attr(res, "service.name"), Some("orders"));
    assert_eq!(
        str_attr(res, "deployment.environment.name"),
        Some("staging")
    );
    let r = &rl.scope_logs[0].log_records[0];
    assert_eq!(
        rl.scope_logs[0].scope.as_ref().map(|s| s.name.as_str()),
        Some("loggier")
    );
    assert_eq!(r.severity_number, 21);
    assert_eq!(r.severity_text, "CRITICAL");
    assert_eq!(r.time_unix_nano, 1_700_000_000_123_456_789);
    assert_eq!(body_text(r), Some("disk full"));
    assert_eq!(r.trace_id[..2], [0x4b, 0xf9]);
    assert_eq!(
        r.span_id,
        vec![0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7]
    );
    assert_eq!(attr(&r.attributes, "free_bytes"), Some(&Value::IntValue(0)));
}

#[test]
fn grpc_status_codes_follow_the_otlp_retry_rules() {
    let c = GrpcCollector::start();
    let mut sink = grpc_sink(&c);
    c.script([
        Err(Status::unavailable("collector restarting")),
        Err(Status::with_error_details(
            Code::ResourceExhausted,
            "memory limiter",
            ErrorDetails::with_retry_info(Some(Duration::from_secs(3))),
        )),
        Err(Status::resource_exhausted("quota exceeded, no retry info")),
        Err(Status::invalid_argument("bad log record")),
        Err(Status::unauthenticated("no api key")),
    ]);
    let rec = Record::new(Level::Info, "x");
    let mut out = Vec::new();
    for _ in 0..5 {
        out.extend(encode_and_send(
            &mut sink,
            std::slice::from_ref(&rec),
            &service(),
        ));
    }
    assert_eq!(
        out[0],
        SendOutcome::Retry {
            reason: "grpc Unavailable: collector restarting".into(),
            retry_after: None
        }
    );
    assert_eq!(
        out[1],
        SendOutcome::Retry {
            reason: "grpc ResourceExhausted: memory limiter".into(),
            retry_after: Some(Duration::from_secs(3))
        }
    );
    assert!(matches!(&out[2], SendOutcome::Reject { reason } if reason.contains("quota exceeded")));
    assert!(matches!(&out[3], SendOutcome::Reject { reason } if reason.contains("bad log record")));
    assert!(
        matches!(&out[4], SendOutcome::Reject { reason } if reason.contains("Unauthenticated"))
    );
    assert_eq!(c.got().len(), 5);
}

#[test]
fn grpc_unreachable_collector_is_a_retry() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let mut sink = OtlpSink::builder()
        .protocol(OtlpProtocol::Grpc)
        .endpoint(format!("http://127.0.0.1:{port}"))
        .timeout(Duration::from_secs(2))
        .build()
        .expect("valid");
    let out = encode_and_send(&mut sink, &[Record::new(Level::Info, "x")], &service());
    assert!(
        matches!(&out[0], SendOutcome::Retry { reason, .. } if reason.starts_with("grpc Unavailable")),
        "{out:?}"
    );
}

#[test]
fn grpc_end_to_end_with_partial_success_counted() {
    let c = GrpcCollector::start();
    c.script([Ok(ExportLogsServiceResponse {
        partial_success: Some(ExportLogsPartialSuccess {
            rejected_log_records: 2,
            error_message: "2 records dropped by a filter".into(),
        }),
    })]);
    let sink = OtlpSink::builder()
        .protocol(OtlpProtocol::Grpc)
        .endpoint(c.url())
        .compression(OtlpCompression::Gzip)
        .build()
        .expect("valid sink");
    let partial = sink.partial_success();
    let queue_dir = tempfile::tempdir().expect("tempdir");
    let log = Loggier::builder()
        .service_name("grpc-svc")
        .max_batch_size(10)
        // Its own disk queue, not the shared ./loggier-data of the working directory.
        .data_dir(queue_dir.path())
        .sink(sink)
        .build()
        .expect("client");
    for i in 0..10 {
        log.event(Level::Warning, format!("w{i}"))
            .field("i", i)
            .emit();
    }
    assert!(log.flush(DEADLINE), "flush");
    assert!(wait_until(|| c
        .got()
        .iter()
        .map(|g| g.request.resource_logs[0].scope_logs[0].log_records.len())
        .sum::<usize>()
        == 10));
    let st = log.stats();
    let s = st.sink("otlp").expect("stats");
    assert_eq!(s.written, 8);
    assert_eq!(s.dropped_rejected, 2);
    assert_eq!(partial.rejected_log_records(), 2);
    assert_eq!(
        partial.last_error_message().as_deref(),
        Some("2 records dropped by a filter")
    );
    let first = &c.got()[0].request.resource_logs[0];
    let res = &first.resource.as_ref().expect("resource").attributes;
    assert_eq!(str_attr(res, "service.name"), Some("grpc-svc"));
    let r = &first.scope_logs[0].log_records[0];
    assert_eq!(r.severity_number, 13);
    assert_eq!(attr(&r.attributes, "i"), Some(&Value::IntValue(0)));
    log.shutdown(DEADLINE);
}

/// A certificate for `127.0.0.1` and `localhost`, self-signed (it is its own CA):
/// (certificate PEM, key PEM).
fn self_signed() -> (String, String) {
    let c = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into(), "localhost".into()])
        .expect("certificate");
    (c.cert.pem(), c.signing_key.serialize_pem())
}

fn tls_sink(port: u16, ca: Option<&str>) -> OtlpSink {
    let mut b = OtlpSink::builder()
        .protocol(OtlpProtocol::Grpc)
        .endpoint(format!("https://127.0.0.1:{port}"))
        .header("authorization", "Bearer tls-secret")
        .timeout(Duration::from_secs(5));
    if let Some(ca) = ca {
        b = b.ca_certificate_pem(ca);
    }
    b.build().expect("valid sink")
}

#[test]
fn https_grpc_with_the_collectors_ca_delivers_over_tls() {
    let (cert, key) = self_signed();
    let c = GrpcCollector::start_with(Some((cert.clone(), key)));
    let mut sink = tls_sink(c.addr.port(), Some(&cert));
    let rec = Record::new(Level::Warning, "over tls");
    let outcomes = encode_and_send(&mut sink, &[rec], &service());
    assert_eq!(outcomes, vec![SendOutcome::Delivered]);
    let got = c.got();
    assert_eq!(got.len(), 1);
    // The record and the metadata arrived through the TLS session intact.
    let r = &got[0].request.resource_logs[0].scope_logs[0].log_records[0];
    assert_eq!(body_text(r), Some("over tls"));
    assert_eq!(
        got[0]
            .metadata
            .get("authorization")
            .and_then(|v| v.to_str().ok()),
        Some("Bearer tls-secret")
    );
}

#[test]
fn https_grpc_refuses_a_certificate_it_does_not_trust() {
    let (cert, key) = self_signed();
    let c = GrpcCollector::start_with(Some((cert, key)));
    // Default trust (the system's store): the private certificate is unknown.
    let mut default_roots = tls_sink(c.addr.port(), None);
    // A different CA than the one that signed the collector's certificate.
    let (other_ca, _) = self_signed();
    let mut other = tls_sink(c.addr.port(), Some(&other_ca));
    for sink in [&mut default_roots, &mut other] {
        let outcomes = encode_and_send(sink, &[Record::new(Level::Info, "secret")], &service());
        assert!(
            matches!(outcomes.as_slice(), [SendOutcome::Retry { .. }]),
            "{outcomes:?}"
        );
    }
    assert!(c.got().is_empty(), "nothing may reach an untrusted server");
}

/// Runs the test `name` again in a child process of this test binary with the
/// environment `env` (the system CA store is read from `SSL_CERT_FILE`/`SSL_CERT_DIR`,
/// and `std::env::set_var` is unsafe in edition 2024, which the crate forbids). `true`
/// in the child, which then does the test's work; the parent asserts the child ran
/// exactly that test and passed.
fn in_child(name: &str, env: &[(&str, &std::path::Path)]) -> bool {
    if std::env::var_os("LOGGIER_TLS_CHILD").is_some() {
        return true;
    }
    let exe = std::env::current_exe().expect("test binary");
    let mut cmd = std::process::Command::new(exe);
    cmd.args([name, "--exact", "--nocapture"])
        .env("LOGGIER_TLS_CHILD", "1");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run child");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "child failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // A renamed test would make the child run nothing and still succeed.
    assert!(
        stdout.contains("1 passed"),
        "the child ran no test:\n{stdout}"
    );
    false
}

/// The default trust is the system's CA store, as for OTLP/HTTP: a collector whose
/// CA is in the store (here the store is `SSL_CERT_FILE`, holding the collector's
/// self-signed certificate) is reached over TLS without `ca_certificate_pem`.
#[test]
fn https_grpc_trusts_a_ca_in_the_system_store() {
    const NAME: &str = "https_grpc_trusts_a_ca_in_the_system_store";
    let dir = std::env::var_os("LOGGIER_TLS_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_default();
    if std::env::var_os("LOGGIER_TLS_CHILD").is_none() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (cert, key) = self_signed();
        std::fs::write(dir.path().join("ca.pem"), &cert).expect("write cert");
        std::fs::write(dir.path().join("key.pem"), &key).expect("write key");
        let empty = tempfile::tempdir().expect("tempdir");
        in_child(
            NAME,
            &[
                ("SSL_CERT_FILE", &dir.path().join("ca.pem")),
                ("SSL_CERT_DIR", empty.path()),
                ("LOGGIER_TLS_DIR", dir.path()),
            ],
        );
        return;
    }
    let cert = std::fs::read_to_string(dir.join("ca.pem")).expect("cert");
    let key = std::fs::read_to_string(dir.join("key.pem")).expect("key");
    let c = GrpcCollector::start_with(Some((cert, key)));
    let mut sink = tls_sink(c.addr.port(), None);
    let outcomes = encode_and_send(&mut sink, &[Record::new(Level::Info, "store")], &service());
    assert_eq!(outcomes, vec![SendOutcome::Delivered]);
    let got = c.got();
    assert_eq!(got.len(), 1);
    let r = &got[0].request.resource_logs[0].scope_logs[0].log_records[0];
    assert_eq!(body_text(r), Some("store"));
}

/// Without a system store (a slim container), the sink still builds, trusting
/// Mozilla's roots compiled in: an `https://` endpoint is checked against them, so a
/// private certificate is refused and nothing is sent to it.
#[test]
fn https_grpc_without_a_system_store_falls_back_to_the_built_in_roots() {
    const NAME: &str = "https_grpc_without_a_system_store_falls_back_to_the_built_in_roots";
    let empty = tempfile::tempdir().expect("tempdir");
    if !in_child(
        NAME,
        &[
            ("SSL_CERT_FILE", &empty.path().join("none.pem")),
            ("SSL_CERT_DIR", empty.path()),
        ],
    ) {
        return;
    }
    let (cert, key) = self_signed();
    let c = GrpcCollector::start_with(Some((cert, key)));
    let mut sink = tls_sink(c.addr.port(), None);
    let outcomes = encode_and_send(&mut sink, &[Record::new(Level::Info, "secret")], &service());
    assert!(
        matches!(outcomes.as_slice(), [SendOutcome::Retry { .. }]),
        "{outcomes:?}"
    );
    assert!(c.got().is_empty(), "nothing may reach an untrusted server");
}

#[test]
fn a_plaintext_collector_is_not_reached_over_https_nor_a_tls_one_over_http() {
    let plain = GrpcCollector::start();
    let (cert, key) = self_signed();
    let tls = GrpcCollector::start_with(Some((cert.clone(), key)));
    let mut https_to_plain = tls_sink(plain.addr.port(), Some(&cert));
    let mut http_to_tls = OtlpSink::builder()
        .protocol(OtlpProtocol::Grpc)
        .endpoint(format!("http://{}", tls.addr))
        .timeout(Duration::from_secs(2))
        .build()
        .expect("valid sink");
    for sink in [&mut https_to_plain, &mut http_to_tls] {
        let outcomes = encode_and_send(sink, &[Record::new(Level::Info, "x")], &service());
        assert!(
            matches!(outcomes.as_slice(), [SendOutcome::Retry { .. }]),
            "{outcomes:?}"
        );
    }
    assert!(plain.got().is_empty() && tls.got().is_empty());
}

#[test]
fn a_custom_ca_is_checked_when_the_sink_is_built() {
    let (cert, _) = self_signed();
    let build = |b: OtlpSinkBuilder| b.build().expect_err("must be refused");
    // Not PEM at all.
    let e = build(
        OtlpSink::builder()
            .protocol(OtlpProtocol::Grpc)
            .endpoint("https://collector:4317")
            .ca_certificate_pem("not a certificate"),
    );
    assert_eq!(e.setting(), "otlp_ca_certificate");
    // A CA for a plaintext endpoint would silently protect nothing.
    let e = build(
        OtlpSink::builder()
            .protocol(OtlpProtocol::Grpc)
            .endpoint("http://collector:4317")
            .ca_certificate_pem(cert.clone()),
    );
    assert_eq!(e.setting(), "otlp_endpoint");
    assert!(e.to_string().contains("https"), "{e}");
    // OTLP/HTTP does not use it: refused rather than ignored.
    let e = build(
        OtlpSink::builder()
            .endpoint("https://collector:4318")
            .ca_certificate_pem(cert),
    );
    assert_eq!(e.setting(), "otlp_ca_certificate");
}
