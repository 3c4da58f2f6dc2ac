//! A Loggier ingest receiver on 127.0.0.1 for the delivery tests: a real HTTP/1.1
//! server (hyper) that decodes the gzip JSON batches and can be switched between
//! down (port closed), accepting, 500, 429 + Retry-After, slow and 400.
#![allow(dead_code, unreachable_pub)]

use std::convert::Infallible;
use std::io::Read;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpSocket;
use tokio::task::JoinSet;

/// What the receiver does with the next requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// 200, records kept.
    Accept,
    /// The given status (500, 503, 400 …), records not kept.
    Status(u16),
    /// 429 with `Retry-After: <secs>`.
    TooMany { retry_after_secs: u64 },
    /// Waits `delay` (longer than the client timeout) before answering 200; the
    /// records are kept apart in `late` (the client has given up by then).
    Slow { delay: Duration },
    /// Keeps the records (200, counted in [`Receiver::accepted_ids`]) as soon as the
    /// body arrived, then waits `delay` (shorter than the client timeout) before
    /// answering: a receiver that commits first and answers later, so a shutdown
    /// can meet a send the receiver has already accepted.
    CommitThenAnswer { delay: Duration },
}

/// One request the receiver saw.
#[derive(Debug, Clone)]
pub struct Seen {
    pub batch_id: Option<String>,
    pub authorization: Option<String>,
    pub content_type: Option<String>,
    pub content_encoding: Option<String>,
    /// `context.i` of each record, in body order.
    pub ids: Vec<u64>,
    /// The decoded records.
    pub records: Vec<serde_json::Value>,
    pub status: u16,
    /// Answered after the client's timeout (slow mode): the client has given up.
    pub late: bool,
    pub at: Instant,
}

#[derive(Default)]
struct State {
    mode: Option<Mode>,
    /// Every answered request, whatever the answer.
    requests: Vec<Seen>,
    /// Requests whose headers arrived (answered or not).
    arrivals: usize,
}

/// The receiver. Dropping it stops the server.
pub struct Receiver {
    rt: tokio::runtime::Runtime,
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    server: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

fn lock(m: &Mutex<State>) -> MutexGuard<'_, State> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Receiver {
    /// Starts accepting on a free port.
    pub fn start() -> Self {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("receiver runtime");
        let listener = rt
            .block_on(async { listen(SocketAddr::from(([127, 0, 0, 1], 0))) })
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let state = Arc::new(Mutex::new(State {
            mode: Some(Mode::Accept),
            requests: Vec::new(),
            arrivals: 0,
        }));
        let r = Receiver {
            rt,
            addr,
            state,
            server: Mutex::new(None),
        };
        r.spawn_server(listener);
        r
    }

    /// A receiver whose port is reserved but closed (starts "down").
    pub fn start_down() -> Self {
        let r = Receiver::start();
        r.down();
        r
    }

    /// `http://127.0.0.1:<port>/api/ingest`.
    pub fn url(&self) -> String {
        format!("http://{}/api/ingest", self.addr)
    }

    /// Closes the port and every open connection: clients get "connection refused".
    pub fn down(&self) {
        if let Some(h) = self.server.lock().expect("server").take() {
            h.abort();
            let _ = self.rt.block_on(h);
        }
    }

    /// Reopens the port (same address) in `mode`.
    pub fn up(&self, mode: Mode) {
        self.set_mode(mode);
        if self.server.lock().expect("server").is_some() {
            return;
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        let listener = loop {
            match self.rt.block_on(async { listen(self.addr) }) {
                Ok(l) => break l,
                Err(e) if Instant::now() < deadline => {
                    let _ = e;
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(e) => panic!("cannot rebind {}: {e}", self.addr),
            }
        };
        self.spawn_server(listener);
    }

    /// Changes how the next requests are answered (the port stays as it is).
    pub fn set_mode(&self, mode: Mode) {
        lock(&self.state).mode = Some(mode);
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<Seen> {
        lock(&self.state).requests.clone()
    }

    /// Ids of the records in accepted (200) requests, in arrival order.
    pub fn accepted_ids(&self) -> Vec<u64> {
        lock(&self.state)
            .requests
            .iter()
            .filter(|s| s.status == 200 && !s.late)
            .flat_map(|s| s.ids.iter().copied())
            .collect()
    }

    /// Polls until `pred(accepted ids)` holds or `timeout` passes; returns the ids.
    pub fn wait_for(&self, timeout: Duration, pred: impl Fn(&[u64]) -> bool) -> Vec<u64> {
        let deadline = Instant::now() + timeout;
        loop {
            let ids = self.accepted_ids();
            if pred(&ids) || Instant::now() >= deadline {
                return ids;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Polls until at least `n` requests arrived (answered or still being answered).
    pub fn wait_arrivals(&self, n: usize, timeout: Duration) -> usize {
        let deadline = Instant::now() + timeout;
        loop {
            let a = lock(&self.state).arrivals;
            if a >= n || Instant::now() >= deadline {
                return a;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Polls until at least `n` requests were answered (any answer).
    pub fn wait_requests(&self, n: usize, timeout: Duration) -> Vec<Seen> {
        let deadline = Instant::now() + timeout;
        loop {
            let r = self.requests();
            if r.len() >= n || Instant::now() >= deadline {
                return r;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn spawn_server(&self, listener: tokio::net::TcpListener) {
        let state = self.state.clone();
        let handle = self.rt.spawn(async move {
            // Connection tasks live in this set: aborting the accept task drops the
            // set, which aborts every connection (a real outage, not a lingering
            // keep-alive socket).
            let mut conns = JoinSet::new();
            loop {
                tokio::select! {
                    accepted = listener.accept() => {
                        let Ok((stream, _)) = accepted else { continue };
                        let state = state.clone();
                        conns.spawn(async move {
                            let svc = hyper::service::service_fn(move |req| {
                                handle(state.clone(), req)
                            });
                            let _ = hyper::server::conn::http1::Builder::new()
                                .serve_connection(TokioIo::new(stream), svc)
                                .await;
                        });
                    }
                    Some(_) = conns.join_next(), if !conns.is_empty() => {}
                }
            }
        });
        *self.server.lock().expect("server") = Some(handle);
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.down();
    }
}

fn listen(addr: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let socket = TcpSocket::new_v4()?;
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(128)
}

async fn handle(
    state: Arc<Mutex<State>>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let batch_id = header("x-loggier-batch-id");
    let authorization = header("authorization");
    let content_type = header("content-type");
    let content_encoding = header("content-encoding");
    let mode = {
        let mut g = lock(&state);
        g.arrivals += 1;
        g.mode.unwrap_or(Mode::Accept)
    };
    let body = match req.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => Bytes::new(),
    };
    let json = if content_encoding.as_deref() == Some("gzip") {
        let mut out = Vec::new();
        match flate2::read::GzDecoder::new(&body[..]).read_to_end(&mut out) {
            Ok(_) => out,
            Err(_) => Vec::new(),
        }
    } else {
        body.to_vec()
    };
    let records: Vec<serde_json::Value> = serde_json::from_slice(&json).unwrap_or_default();
    let ids = records
        .iter()
        .filter_map(|r| r["context"]["i"].as_u64())
        .collect();
    // `answer_after`: kept first, answered that much later (`CommitThenAnswer`).
    let (status, retry_after, late, answer_after) = match mode {
        Mode::CommitThenAnswer { delay } => (200, None, false, Some(delay)),
        Mode::Accept => (200, None, false, None),
        Mode::Status(s) => (s, None, false, None),
        Mode::TooMany { retry_after_secs } => (429, Some(retry_after_secs), false, None),
        Mode::Slow { delay } => {
            tokio::time::sleep(delay).await;
            (200, None, true, None)
        }
    };
    lock(&state).requests.push(Seen {
        batch_id,
        authorization,
        content_type,
        content_encoding,
        ids,
        records,
        status,
        late,
        at: Instant::now(),
    });
    if let Some(delay) = answer_after {
        tokio::time::sleep(delay).await;
    }
    let mut resp = Response::new(Full::new(Bytes::from(format!(
        "receiver answered {status}"
    ))));
    *resp.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if let Some(secs) = retry_after {
        resp.headers_mut().insert(
            "retry-after",
            hyper::header::HeaderValue::from_str(&secs.to_string()).expect("header"),
        );
    }
    Ok(resp)
}

/// Counts how often each id occurs: (missing ids in 0..n, duplicated occurrences).
pub fn missing_and_duplicates(ids: &[u64], n: u64) -> (Vec<u64>, usize) {
    let mut count = vec![0usize; n as usize];
    let mut extra = 0;
    for &i in ids {
        if let Some(c) = count.get_mut(i as usize) {
            *c += 1;
            if *c > 1 {
                extra += 1;
            }
        }
    }
    let missing = (0..n).filter(|&i| count[i as usize] == 0).collect();
    (missing, extra)
}

/// `true` when the first occurrences of the ids are in increasing order.
pub fn first_occurrences_in_order(ids: &[u64]) -> bool {
    let mut seen = std::collections::HashSet::new();
    let firsts: Vec<u64> = ids.iter().copied().filter(|i| seen.insert(*i)).collect();
    firsts.windows(2).all(|w| w[0] < w[1])
}

/// Settings shared by the delivery tests: short batches, intervals and backoffs so
/// every scenario runs in well under a second of waiting.
pub struct ClientOpts {
    pub mode: loggier_core::DeliveryMode,
    pub max_batch_size: usize,
    pub max_retries: u32,
    pub network_check_interval: Duration,
    pub http_timeout: Duration,
    pub cache_max_bytes: u64,
    pub caching: bool,
}

impl Default for ClientOpts {
    fn default() -> Self {
        ClientOpts {
            mode: loggier_core::DeliveryMode::OfflineCache,
            max_batch_size: 50,
            max_retries: 2,
            network_check_interval: Duration::from_millis(50),
            http_timeout: Duration::from_millis(500),
            cache_max_bytes: 256 * 1024 * 1024,
            caching: true,
        }
    }
}

/// A client with one Loggier HTTP sink named `http` posting to `url`, its disk
/// queue in `dir`.
pub fn client(url: &str, dir: &std::path::Path, o: &ClientOpts) -> loggier_core::Loggier {
    client_builder(url, dir, o).build().expect("client")
}

/// The builder behind [`client`], for a test that changes more settings.
pub fn client_builder(
    url: &str,
    dir: &std::path::Path,
    o: &ClientOpts,
) -> loggier_core::LoggierBuilder {
    let sink = loggier_core::HttpSink::builder(url)
        .api_key("test-key")
        .timeout(o.http_timeout)
        .build()
        .expect("http sink");
    loggier_core::Loggier::builder()
        .service_name("delivery-test")
        .data_dir(dir)
        .cache_dir(dir.join("queue"))
        .max_batch_size(o.max_batch_size)
        .flush_interval(Duration::from_millis(20))
        .max_retries(o.max_retries)
        .retry_initial_backoff(Duration::from_millis(10))
        .retry_max_backoff(Duration::from_millis(50))
        .network_check_interval(o.network_check_interval)
        .delivery_mode(o.mode)
        .cache_max_bytes(o.cache_max_bytes)
        .enable_caching(o.caching)
        .sink(sink)
}

/// Logs records `ids` at info level, each with context field `i`.
pub fn log_ids(log: &loggier_core::Loggier, ids: std::ops::Range<u64>) {
    for i in ids {
        log.event(loggier_core::Level::Info, format!("record {i}"))
            .field("i", i)
            .emit();
    }
}

/// Polls `log.stats()` until `pred` holds or `timeout` passes; returns the last
/// snapshot.
pub fn wait_stats(
    log: &loggier_core::Loggier,
    timeout: Duration,
    pred: impl Fn(&loggier_core::Stats) -> bool,
) -> loggier_core::Stats {
    let deadline = Instant::now() + timeout;
    loop {
        let s = log.stats();
        if pred(&s) || Instant::now() >= deadline {
            return s;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The conservation law of the issue, for a client whose sinks all got every
/// record: `enqueued + restored == delivered + dropped(all reasons) + pending`, where
/// pending is the channel plus the sink's memory and disk. Checked per sink too.
pub fn assert_conservation(s: &loggier_core::Stats) {
    for k in &s.sinks {
        assert_eq!(k.balance(), 0, "sink {} does not balance: {k:?}", k.name);
        let lhs = s.enqueued + k.restored;
        let rhs = s.dropped() + s.in_channel + k.written + k.dropped() + k.pending;
        assert_eq!(lhs, rhs, "conservation failed: {s:?}");
    }
}
