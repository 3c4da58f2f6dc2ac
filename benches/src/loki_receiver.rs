//! A loopback Loki push receiver for the pipeline runs.
//!
//! `POST /loki/api/v1/push` with a snappy-compressed `logproto.PushRequest` body (the
//! wire format of `loggier_core::sink::loki`) is decoded and its entries counted; the
//! answer is `204 No Content`, as Loki answers. While [`LokiReceiver::set_down`] is
//! `true` every push is answered `503 Service Unavailable` and nothing is counted —
//! the outage the disk queue and retries must ride out. A body that does not decode is
//! answered 400 and counted in [`LokiReceiver::bad_requests`].
//!
//! The server runs on its own thread with a current-thread tokio runtime, so it can
//! be used from synchronous harness code.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use loggier_core::sink::loki::proto::PushRequest;
use prost::Message as _;

#[derive(Default)]
struct Counters {
    down: AtomicBool,
    entries: AtomicU64,
    requests: AtomicU64,
    bytes: AtomicU64,
    refused: AtomicU64,
    bad: AtomicU64,
}

/// A running receiver; stops when dropped.
pub struct LokiReceiver {
    addr: SocketAddr,
    counters: Arc<Counters>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl std::fmt::Debug for LokiReceiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LokiReceiver")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

async fn push(State(c): State<Arc<Counters>>, body: Bytes) -> StatusCode {
    if c.down.load(Ordering::Relaxed) {
        c.refused.fetch_add(1, Ordering::Relaxed);
        return StatusCode::SERVICE_UNAVAILABLE;
    }
    let decoded = snap::raw::Decoder::new()
        .decompress_vec(&body)
        .ok()
        .and_then(|raw| PushRequest::decode(raw.as_slice()).ok());
    match decoded {
        Some(req) => {
            let n: usize = req.streams.iter().map(|s| s.entries.len()).sum();
            c.entries.fetch_add(n as u64, Ordering::Relaxed);
            c.requests.fetch_add(1, Ordering::Relaxed);
            c.bytes.fetch_add(body.len() as u64, Ordering::Relaxed);
            StatusCode::NO_CONTENT
        }
        None => {
            c.bad.fetch_add(1, Ordering::Relaxed);
            StatusCode::BAD_REQUEST
        }
    }
}

impl LokiReceiver {
    /// Binds 127.0.0.1:0 and starts serving.
    ///
    /// # Errors
    /// The I/O error when the runtime, the listener or the thread cannot be created.
    pub fn start() -> std::io::Result<LokiReceiver> {
        let counters = Arc::new(Counters::default());
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let listener = rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))?;
        let addr = listener.local_addr()?;
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let app = Router::new()
            .route("/loki/api/v1/push", post(push))
            .with_state(Arc::clone(&counters));
        let thread = std::thread::Builder::new()
            .name("loki-receiver".into())
            .spawn(move || {
                rt.block_on(async move {
                    let serve = axum::serve(listener, app).with_graceful_shutdown(async move {
                        let _ = rx.await;
                    });
                    if let Err(e) = serve.await {
                        eprintln!("loki receiver stopped: {e}");
                    }
                });
            })?;
        Ok(LokiReceiver {
            addr,
            counters,
            stop: Some(tx),
            thread: Some(thread),
        })
    }

    /// Base URL, e.g. `http://127.0.0.1:41234` (the sink appends the push path).
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// While `true`, pushes are answered 503 and not counted.
    pub fn set_down(&self, down: bool) {
        self.counters.down.store(down, Ordering::Relaxed);
    }

    /// Entries decoded from accepted pushes so far.
    pub fn entries(&self) -> u64 {
        self.counters.entries.load(Ordering::Relaxed)
    }

    /// Accepted push requests so far.
    pub fn requests(&self) -> u64 {
        self.counters.requests.load(Ordering::Relaxed)
    }

    /// Compressed body bytes of accepted pushes so far.
    pub fn bytes(&self) -> u64 {
        self.counters.bytes.load(Ordering::Relaxed)
    }

    /// Pushes answered 503 while down.
    pub fn refused(&self) -> u64 {
        self.counters.refused.load(Ordering::Relaxed)
    }

    /// Pushes whose body did not decode (answered 400).
    pub fn bad_requests(&self) -> u64 {
        self.counters.bad.load(Ordering::Relaxed)
    }
}

impl Drop for LokiReceiver {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
