//! Fault soak (issue 9): three network sinks against loopback receivers that answer
//! each request at random with 200, 500, 429, a hang past the client's timeout, or a
//! dropped connection; a stdout sink whose reader never reads; the client restarted
//! on the same disk queue between rounds. Bounded to a few seconds of faults.
//!
//! Checked: after every shutdown each sink balances exactly (enqueued + restored =
//! written + drops + pending), nothing is stuck in the channel, the network sinks
//! drop nothing; at the end every record reaches every receiver, first occurrences
//! in the order logged, and the queue is empty.
#![cfg(all(
    unix,
    feature = "http-ingest",
    feature = "disk-queue",
    feature = "stdout"
))]

mod support;

use std::io::Read;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use loggier_core::{HttpSink, Loggier, StdoutFormat, StdoutSink};
use support::{assert_conservation, first_occurrences_in_order, missing_and_duplicates};

/// One answer the chaos receiver gives.
#[derive(Debug, Clone, Copy)]
enum Answer {
    Accept,
    ServerError,
    TooMany,
    /// Answer 200 only after the client's timeout (it has given up by then).
    Hang,
    /// Drop the connection without an answer.
    Close,
}

#[derive(Default)]
struct Seen {
    /// `context.i` of accepted (timely 200) requests, in arrival order.
    accepted: Vec<u64>,
    answers: [usize; 5],
}

/// A Loggier ingest receiver on 127.0.0.1 answering at random until `calm`.
struct Chaos {
    /// Serves the connections; dropped with the receiver.
    _rt: tokio::runtime::Runtime,
    addr: SocketAddr,
    seen: Arc<Mutex<Seen>>,
    calm: Arc<AtomicBool>,
}

impl Chaos {
    fn start(seed: u64) -> Self {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        let listener = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let seen = Arc::new(Mutex::new(Seen::default()));
        let calm = Arc::new(AtomicBool::new(false));
        let rng = Arc::new(Mutex::new(fastrand::Rng::with_seed(seed)));
        let (s, c) = (Arc::clone(&seen), Arc::clone(&calm));
        rt.spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let (s, c, rng) = (Arc::clone(&s), Arc::clone(&c), Arc::clone(&rng));
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |req| {
                        answer(req, Arc::clone(&s), Arc::clone(&c), Arc::clone(&rng))
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        Chaos {
            _rt: rt,
            addr,
            seen,
            calm,
        }
    }

    fn url(&self) -> String {
        format!("http://{}/api/ingest", self.addr)
    }

    fn accepted(&self) -> Vec<u64> {
        self.seen.lock().expect("seen").accepted.clone()
    }

    fn answers(&self) -> [usize; 5] {
        self.seen.lock().expect("seen").answers
    }
}

async fn answer(
    req: Request<Incoming>,
    seen: Arc<Mutex<Seen>>,
    calm: Arc<AtomicBool>,
    rng: Arc<Mutex<fastrand::Rng>>,
) -> Result<Response<Full<Bytes>>, std::io::Error> {
    let gzip = req
        .headers()
        .get("content-encoding")
        .is_some_and(|v| v == "gzip");
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let pick = if calm.load(Ordering::SeqCst) {
        Answer::Accept
    } else {
        match rng.lock().expect("rng").u32(0..100) {
            0..50 => Answer::Accept,
            50..65 => Answer::ServerError,
            65..77 => Answer::TooMany,
            77..87 => Answer::Hang,
            _ => Answer::Close,
        }
    };
    seen.lock().expect("seen").answers[pick as usize] += 1;
    let status = match pick {
        Answer::Accept => 200,
        Answer::ServerError => 500,
        Answer::TooMany => 429,
        Answer::Hang => {
            tokio::time::sleep(Duration::from_millis(600)).await;
            return Ok(Response::new(Full::new(Bytes::from_static(b"late"))));
        }
        Answer::Close => {
            return Err(std::io::Error::new(
                std::io::ErrorKind::ConnectionReset,
                "chaos: connection dropped",
            ));
        }
    };
    if status == 200 {
        let json = if gzip {
            let mut out = Vec::new();
            let _ = flate2::read::GzDecoder::new(&body[..]).read_to_end(&mut out);
            out
        } else {
            body.to_vec()
        };
        let records: Vec<serde_json::Value> = serde_json::from_slice(&json).unwrap_or_default();
        let ids = records.iter().filter_map(|r| r["context"]["i"].as_u64());
        seen.lock().expect("seen").accepted.extend(ids);
    }
    let mut resp = Response::new(Full::new(Bytes::from(format!("chaos answered {status}"))));
    *resp.status_mut() = hyper::StatusCode::from_u16(status).expect("status");
    if status == 429 {
        resp.headers_mut()
            .insert("retry-after", hyper::header::HeaderValue::from_static("0"));
    }
    Ok(resp)
}

fn client(
    dir: &std::path::Path,
    receivers: &[Chaos],
    stdout: std::os::unix::net::UnixStream,
) -> Loggier {
    let mut b = Loggier::builder()
        .service_name("soak")
        .data_dir(dir)
        .cache_dir(dir.join("queue"))
        .max_batch_size(20)
        .flush_interval(Duration::from_millis(20))
        .max_retries(2)
        .retry_initial_backoff(Duration::from_millis(10))
        .retry_max_backoff(Duration::from_millis(50))
        .network_check_interval(Duration::from_millis(50));
    for (name, rx) in ["a", "b", "c"].iter().zip(receivers) {
        b = b.sink(
            HttpSink::builder(rx.url())
                .name(*name)
                .api_key("soak-key")
                .timeout(Duration::from_millis(300))
                .build()
                .expect("http sink"),
        );
    }
    b.sink(StdoutSink::with_writer(
        StdoutFormat::Json,
        Box::new(stdout),
    ))
    .build()
    .expect("client")
}

#[test]
fn soak_random_faults_stalled_stdout_and_restarts_lose_nothing() {
    let seed = fastrand::u64(..);
    eprintln!("soak seed {seed}");
    let receivers: Vec<Chaos> = (0..3u64).map(|i| Chaos::start(seed ^ i)).collect();
    let dir = tempfile::tempdir().expect("tempdir");
    // Reading ends of the stalled stdouts, kept open and never read.
    let mut never_read = Vec::new();
    let mut logged = 0u64;
    let padding = "y".repeat(300);
    for round in 0..3 {
        let (w, r) = std::os::unix::net::UnixStream::pair().expect("pair");
        never_read.push(r);
        let log = client(dir.path(), &receivers, w);
        let round_end = Instant::now() + Duration::from_millis(900);
        while Instant::now() < round_end {
            for i in logged..logged + 25 {
                log.event(loggier_core::Level::Info, format!("record {i} {padding}"))
                    .field("i", i)
                    .emit();
            }
            logged += 25;
            std::thread::sleep(Duration::from_millis(20));
        }
        log.shutdown(Duration::from_secs(1));
        let s = log.stats();
        assert_eq!(s.in_channel, 0, "round {round}: {s:?}");
        assert_eq!(s.dropped(), 0, "round {round}: {s:?}");
        assert_conservation(&s);
        for name in ["a", "b", "c"] {
            let k = s.sink(name).expect("sink");
            assert_eq!(
                k.dropped(),
                0,
                "round {round}: network sink {name} dropped: {k:?}"
            );
        }
        drop(log);
    }
    // Calm: every receiver accepts; one last client drains the queue.
    for rx in &receivers {
        rx.calm.store(true, Ordering::SeqCst);
    }
    let (w, r) = std::os::unix::net::UnixStream::pair().expect("pair");
    never_read.push(r);
    let log = client(dir.path(), &receivers, w);
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline
        && !receivers
            .iter()
            .all(|rx| missing_and_duplicates(&rx.accepted(), logged).0.is_empty())
    {
        std::thread::sleep(Duration::from_millis(20));
    }
    let s = support::wait_stats(&log, Duration::from_secs(10), |s| {
        ["a", "b", "c"]
            .iter()
            .all(|n| s.sink(n).is_some_and(|k| k.pending == 0))
    });
    for (name, rx) in ["a", "b", "c"].iter().zip(&receivers) {
        let ids = rx.accepted();
        let (missing, dups) = missing_and_duplicates(&ids, logged);
        assert!(
            missing.is_empty(),
            "sink {name} lost {} of {logged} records (seed {seed}): {missing:?}",
            missing.len()
        );
        assert!(
            first_occurrences_in_order(&ids),
            "sink {name} out of order (seed {seed})"
        );
        let k = s.sink(name).expect("sink");
        assert_eq!(k.pending, 0, "{k:?}");
        assert_eq!(k.pending_disk, 0, "{k:?}");
        assert_eq!(k.dropped(), 0, "{k:?}");
        eprintln!(
            "sink {name}: {logged} records, {dups} duplicates, answers [ok, 500, 429, hang, close] = {:?}",
            rx.answers()
        );
    }
    log.shutdown(Duration::from_secs(1));
    let s = log.stats();
    assert_eq!(s.in_channel, 0, "{s:?}");
    assert_conservation(&s);
    // The stalled stdout took some records at most; the rest are counted.
    let out = s.sink("stdout").expect("stdout");
    assert!(out.written < logged, "{out:?}");
    drop(never_read);
}
