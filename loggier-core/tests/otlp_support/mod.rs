//! Loopback OTLP receivers for the integration tests: an axum OTLP/HTTP collector and
//! a tonic OTLP/gRPC collector, each on 127.0.0.1:0 with its own runtime, decoding the
//! real wire format with the `opentelemetry-proto` types.
#![allow(dead_code, unreachable_pub, missing_docs)]

use std::collections::VecDeque;
use std::io::Read;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use loggier_core::{Payload, Record, SendOutcome, ServiceInfo, Sink};
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::logs::v1::LogRecord;
use prost::Message;
use tokio::sync::watch;

/// Longest any test waits for something to arrive.
pub const DEADLINE: Duration = Duration::from_secs(10);

/// Polls `cond` every 10 ms until it holds or `DEADLINE` passes; returns whether it held.
pub fn wait_until(mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + DEADLINE;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// One request as the collector saw it.
#[derive(Debug, Clone)]
pub struct Received {
    pub method: String,
    pub path: String,
    pub headers: HeaderMap,
    pub request: ExportLogsServiceRequest,
}

impl Received {
    pub fn log_records(&self) -> Vec<LogRecord> {
        self.request
            .resource_logs
            .iter()
            .flat_map(|rl| rl.scope_logs.iter())
            .flat_map(|sl| sl.log_records.iter().cloned())
            .collect()
    }
}

/// A scripted HTTP answer.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn status(status: u16) -> Self {
        Reply {
            status,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    pub fn header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    pub fn body(mut self, body: Vec<u8>) -> Self {
        self.body = body;
        self
    }
}

struct HttpShared {
    received: Mutex<Vec<Received>>,
    replies: Mutex<VecDeque<Reply>>,
    arrived: AtomicUsize,
    open: watch::Receiver<bool>,
}

/// An OTLP/HTTP collector: every `POST` is gunzipped when `Content-Encoding: gzip`,
/// decoded as `ExportLogsServiceRequest` and kept; the answer is the next scripted
/// [`Reply`], or `200` with an empty `ExportLogsServiceResponse`.
pub struct HttpCollector {
    pub addr: SocketAddr,
    shared: Arc<HttpShared>,
    gate: watch::Sender<bool>,
    rt: Option<tokio::runtime::Runtime>,
}

impl HttpCollector {
    pub fn start() -> Self {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        let (gate, open) = watch::channel(true);
        let shared = Arc::new(HttpShared {
            received: Mutex::new(Vec::new()),
            replies: Mutex::new(VecDeque::new()),
            arrived: AtomicUsize::new(0),
            open,
        });
        let listener = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let app = axum::Router::new()
            .fallback(handle)
            .with_state(Arc::clone(&shared));
        rt.spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        HttpCollector {
            addr,
            shared,
            gate,
            rt: Some(rt),
        }
    }

    /// Base URL, `http://127.0.0.1:<port>`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Queues answers for the next requests, in order.
    pub fn script(&self, replies: impl IntoIterator<Item = Reply>) {
        self.shared.replies.lock().expect("lock").extend(replies);
    }

    /// From now on, requests are accepted and read but not answered until
    /// [`HttpCollector::release`].
    pub fn stall(&self) {
        self.gate.send_replace(false);
    }

    /// Answers the stalled requests and every later one.
    pub fn release(&self) {
        self.gate.send_replace(true);
    }

    /// Requests that reached the handler (answered or stalled).
    pub fn arrived(&self) -> usize {
        self.shared.arrived.load(Ordering::SeqCst)
    }

    pub fn received(&self) -> Vec<Received> {
        self.shared.received.lock().expect("lock").clone()
    }

    pub fn records(&self) -> Vec<LogRecord> {
        self.received()
            .iter()
            .flat_map(Received::log_records)
            .collect()
    }
}

impl Drop for HttpCollector {
    fn drop(&mut self) {
        self.release();
        if let Some(rt) = self.rt.take() {
            rt.shutdown_timeout(Duration::from_secs(1));
        }
    }
}

async fn handle(
    State(st): State<Arc<HttpShared>>,
    method: axum::http::Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    st.arrived.fetch_add(1, Ordering::SeqCst);
    let mut open = st.open.clone();
    let _ = open.wait_for(|o| *o).await;
    let gzip = headers
        .get("content-encoding")
        .is_some_and(|v| v.as_bytes() == b"gzip");
    let raw = if gzip {
        let mut out = Vec::new();
        if let Err(e) = flate2::read::GzDecoder::new(body.as_ref()).read_to_end(&mut out) {
            return (StatusCode::BAD_REQUEST, format!("bad gzip: {e}")).into_response();
        }
        out
    } else {
        body.to_vec()
    };
    let request = match ExportLogsServiceRequest::decode(raw.as_slice()) {
        Ok(r) => r,
        Err(e) => {
            return (StatusCode::BAD_REQUEST, format!("bad protobuf: {e}")).into_response();
        }
    };
    st.received.lock().expect("lock").push(Received {
        method: method.to_string(),
        path: uri.path().to_string(),
        headers,
        request,
    });
    let reply = st.replies.lock().expect("lock").pop_front();
    match reply {
        Some(r) => {
            let mut resp =
                (StatusCode::from_u16(r.status).expect("status"), r.body).into_response();
            for (k, v) in r.headers {
                resp.headers_mut()
                    .insert(k, v.parse().expect("header value"));
            }
            resp
        }
        None => (
            [("content-type", "application/x-protobuf")],
            ExportLogsServiceResponse::default().encode_to_vec(),
        )
            .into_response(),
    }
}

/// Encodes `records` with `sink` (shared in `Arc`s, as the pipeline holds them) and
/// sends every payload, on a current-thread runtime like the Loggier worker's; returns
/// one outcome per payload.
pub fn encode_and_send(
    sink: &mut dyn Sink,
    records: &[Record],
    service: &ServiceInfo,
) -> Vec<SendOutcome> {
    let records: Vec<Arc<Record>> = records.iter().cloned().map(Arc::new).collect();
    let payloads: Vec<Payload> = sink.encode(&records, service).expect("encodes");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let mut out = Vec::new();
        for p in &payloads {
            out.push(sink.send(p).await);
        }
        out
    })
}

/// The value of attribute `key`.
pub fn attr<'a>(attrs: &'a [KeyValue], key: &str) -> Option<&'a any_value::Value> {
    let found: Vec<&KeyValue> = attrs.iter().filter(|a| a.key == key).collect();
    assert!(
        found.len() <= 1,
        "attribute {key} appears {} times",
        found.len()
    );
    found
        .first()
        .and_then(|a| a.value.as_ref())
        .and_then(|v| v.value.as_ref())
}

pub fn str_attr<'a>(attrs: &'a [KeyValue], key: &str) -> Option<&'a str> {
    match attr(attrs, key) {
        Some(any_value::Value::StringValue(s)) => Some(s),
        _ => None,
    }
}

pub fn body_text(r: &LogRecord) -> Option<&str> {
    match r.body.as_ref().and_then(|b| b.value.as_ref()) {
        Some(any_value::Value::StringValue(s)) => Some(s),
        _ => None,
    }
}

pub fn s(v: &str) -> any_value::Value {
    any_value::Value::StringValue(v.to_string())
}

pub fn kvlist(v: &any_value::Value) -> &[KeyValue] {
    match v {
        any_value::Value::KvlistValue(l) => &l.values,
        other => panic!("expected a kvlist, got {other:?}"),
    }
}

pub fn array(v: &any_value::Value) -> Vec<Option<any_value::Value>> {
    match v {
        any_value::Value::ArrayValue(a) => a
            .values
            .iter()
            .map(|x: &AnyValue| x.value.clone())
            .collect(),
        other => panic!("expected an array, got {other:?}"),
    }
}

/// The service identity used by the direct-drive tests.
pub fn service() -> ServiceInfo {
    ServiceInfo {
        service: "orders".into(),
        environment: "staging".into(),
        version: Some("1.2.3".into()),
        project: Some("shop".into()),
        ..ServiceInfo::default()
    }
}
