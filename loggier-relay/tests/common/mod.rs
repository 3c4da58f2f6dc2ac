//! Test harness: a loopback Loki that decodes the real push wire format
//! (snappy block + `logproto.PushRequest`, checked again with the `loki-api` crate)
//! and answers the query API like Loki's HTTP API, plus a relay started on
//! 127.0.0.1:0 with a pipeline built from environment-style variables.

#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use loggier_core::Loggier;
use loggier_core::sink::loki::proto::PushRequest;
use loggier_relay::model::parse_label_text;
use loggier_relay::{Relay, RelayConfig, build_pipeline};
use prost::Message as _;
use serde_json::{Value, json};

/// One entry as Loki stored it.
#[derive(Debug, Clone)]
pub struct Stored {
    pub labels: BTreeMap<String, String>,
    pub ts_ns: u64,
    pub line: String,
    pub metadata: BTreeMap<String, String>,
}

impl Stored {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.line).expect("line is JSON")
    }
}

#[derive(Default)]
pub struct LokiState {
    pub entries: Mutex<Vec<Stored>>,
    /// Query strings of every query API call, in order.
    pub queries: Mutex<Vec<String>>,
    pub pushes: Mutex<usize>,
}

/// A loopback Loki.
#[derive(Clone)]
pub struct FakeLoki {
    pub url: String,
    pub state: Arc<LokiState>,
}

impl FakeLoki {
    pub async fn start() -> FakeLoki {
        let state = Arc::new(LokiState::default());
        let app = Router::new()
            .route("/loki/api/v1/push", post(push))
            .route("/ready", get(|| async { "ready" }))
            .route("/loki/api/v1/labels", get(labels))
            .route("/loki/api/v1/label/{name}/values", get(label_values))
            .route("/loki/api/v1/query_range", get(query_range))
            .with_state(Arc::clone(&state));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        FakeLoki {
            url: format!("http://{addr}"),
            state,
        }
    }

    pub fn entries(&self) -> Vec<Stored> {
        self.state.entries.lock().unwrap().clone()
    }

    /// Waits until `n` entries arrived (10 s at most) and returns them all.
    pub async fn wait_for(&self, n: usize) -> Vec<Stored> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let e = self.entries();
            if e.len() >= n || Instant::now() > deadline {
                return e;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

async fn push(State(s): State<Arc<LokiState>>, body: Bytes) -> Response {
    let raw = match snap::raw::Decoder::new().decompress_vec(&body) {
        Ok(r) => r,
        Err(e) => return (StatusCode::BAD_REQUEST, format!("snappy: {e}")).into_response(),
    };
    let req = PushRequest::decode(raw.as_slice()).expect("logproto.PushRequest");
    // Independent decoder: loki-api reads the same streams and lines.
    let theirs =
        <loki_api::logproto::PushRequest as loki_api::prost::Message>::decode(raw.as_slice())
            .expect("loki-api decodes the push");
    assert_eq!(theirs.streams.len(), req.streams.len());
    let mut out = s.entries.lock().unwrap();
    for (st, th) in req.streams.iter().zip(&theirs.streams) {
        assert_eq!(st.labels, th.labels);
        let labels = parse_label_text(&st.labels).expect("label text");
        for e in &st.entries {
            let t = e.timestamp.expect("timestamp");
            out.push(Stored {
                labels: labels.clone(),
                ts_ns: t.seconds as u64 * 1_000_000_000 + t.nanos as u64,
                line: e.line.clone(),
                metadata: e
                    .structured_metadata
                    .iter()
                    .map(|p| (p.name.clone(), p.value.clone()))
                    .collect(),
            });
        }
    }
    *s.pushes.lock().unwrap() += 1;
    StatusCode::NO_CONTENT.into_response()
}

async fn labels(State(s): State<Arc<LokiState>>) -> Response {
    s.queries.lock().unwrap().push("labels".into());
    let mut names: Vec<String> = s
        .entries
        .lock()
        .unwrap()
        .iter()
        .flat_map(|e| e.labels.keys().cloned())
        .collect();
    names.sort();
    names.dedup();
    axum::Json(json!({"status": "success", "data": names})).into_response()
}

async fn label_values(State(s): State<Arc<LokiState>>, Path(name): Path<String>) -> Response {
    s.queries.lock().unwrap().push(format!("values:{name}"));
    let mut vals: Vec<String> = s
        .entries
        .lock()
        .unwrap()
        .iter()
        .filter_map(|e| e.labels.get(&name).cloned())
        .collect();
    vals.sort();
    vals.dedup();
    axum::Json(json!({"status": "success", "data": vals})).into_response()
}

/// Answers like Loki: a LogQL the toy parser rejects gets Loki's plain-text 400;
/// `{name="value"}` selects stored entries by one label; `count_over_time(` answers
/// a matrix.
async fn query_range(State(s): State<Arc<LokiState>>, RawQuery(q): RawQuery) -> Response {
    let q = q.unwrap_or_default();
    s.queries.lock().unwrap().push(q.clone());
    let params: HashMap<String, String> =
        axum::extract::Query::<HashMap<String, String>>::try_from_uri(
            &format!("/?{q}").parse().unwrap(),
        )
        .map(|axum::extract::Query(m)| m)
        .unwrap_or_default();
    let logql = params.get("query").cloned().unwrap_or_default();
    if logql.starts_with("count_over_time(") {
        return axum::Json(json!({"status":"success","data":{"resultType":"matrix",
            "result":[{"metric":{"level":"error"},"values":[[1741520489.0,"3"]]}],
            "stats":{}}}))
        .into_response();
    }
    let Some(sel) = logql
        .strip_prefix('{')
        .and_then(|r| r.strip_suffix('}'))
        .and_then(|r| r.split_once("=\""))
    else {
        return (
            StatusCode::BAD_REQUEST,
            format!(
                "parse error at line 1, col 1: syntax error: unexpected IDENTIFIER in {logql:?}"
            ),
        )
            .into_response();
    };
    let (name, value) = (sel.0.to_string(), sel.1.trim_end_matches('"').to_string());
    let limit: usize = params
        .get("limit")
        .and_then(|l| l.parse().ok())
        .unwrap_or(100);
    let mut streams: BTreeMap<String, (BTreeMap<String, String>, Vec<Value>)> = BTreeMap::new();
    for e in s.entries.lock().unwrap().iter() {
        if e.labels.get(&name) != Some(&value) {
            continue;
        }
        let key = format!("{:?}", e.labels);
        let slot = streams
            .entry(key)
            .or_insert_with(|| (e.labels.clone(), Vec::new()));
        if slot.1.len() < limit {
            slot.1
                .push(json!([e.ts_ns.to_string(), e.line, {"structuredMetadata": e.metadata}]));
        }
    }
    let result: Vec<Value> = streams
        .into_values()
        .map(|(l, v)| json!({"stream": l, "values": v}))
        .collect();
    axum::Json(
        json!({"status":"success","data":{"resultType":"streams","result":result,
        "stats":{"summary":{"totalEntriesReturned":1}}}}),
    )
    .into_response()
}

/// A relay serving on 127.0.0.1:0.
pub struct TestRelay {
    pub base: String,
    pub relay: Relay,
    pub loggier: Loggier,
    pub dir: tempfile::TempDir,
}

impl TestRelay {
    /// The relay with a pipeline built by `build_pipeline` from `vars` plus a fresh
    /// data dir and a 20 ms flush interval; Loki sink and query client when `loki`.
    pub async fn start(
        loki: Option<&FakeLoki>,
        config: RelayConfig,
        vars: &[(&str, &str)],
    ) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut env: HashMap<String, String> = HashMap::new();
        env.insert("LOGGIER_DATA_DIR".into(), dir.path().display().to_string());
        env.insert("LOGGIER_FLUSH_INTERVAL_MS".into(), "20".into());
        env.insert("APP_NAME".into(), "relay-test".into());
        env.insert("ENV".into(), "test".into());
        if let Some(l) = loki {
            env.insert("LOKI_URL".into(), l.url.clone());
        }
        for (k, v) in vars {
            env.insert((*k).into(), (*v).into());
        }
        let p = build_pipeline(&env).expect("pipeline builds");
        let mut b = Relay::builder(p.loggier.clone())
            .config(config)
            .pipeline_config(&p.config);
        if let Some(c) = p.loki.clone() {
            b = b.loki(c);
        }
        let relay = b.build();
        Self::serve(relay, dir).await
    }

    /// Serves an already built relay.
    pub async fn serve(relay: Relay, dir: tempfile::TempDir) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = relay.router();
        tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        TestRelay {
            base: format!("http://{addr}"),
            loggier: relay.loggier().clone(),
            relay,
            dir,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn flush(&self) {
        assert!(
            self.loggier.flush_async(Duration::from_secs(10)).await,
            "pipeline flushes"
        );
    }
}

/// One shared client: building a reqwest client loads the system certificate store
/// (~100 ms in a debug build), too slow to repeat per request. Idle connections are
/// not pooled, so no connection outlives the test runtime that opened it.
pub fn http() -> reqwest::Client {
    static CLIENT: std::sync::OnceLock<reqwest::Client> = std::sync::OnceLock::new();
    CLIENT
        .get_or_init(|| {
            reqwest::Client::builder()
                .no_proxy()
                .pool_max_idle_per_host(0)
                .timeout(Duration::from_secs(20))
                .build()
                .unwrap()
        })
        .clone()
}

pub fn gzip(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

/// The seeds/000 example body.
pub fn seed_body() -> Value {
    json!({
        "message": "EscrowCreateAccount error for 615",
        "error": "validator error",
        "msg_id": "123456",
        "service": "app",
        "version": "20250421:abc123",
        "repository": "wallet-api/i-app",
        "revision_id": "abc123",
        "component": "pubsub",
        "data": {"user_id": "42"},
        "stack": [{"func": "main", "line": "10", "source": "main.py"}],
        "caller": "main.py:10",
        "level": "error"
    })
}
