//! Issue 9, item 12: the shared HTTP transport reads only the bytes it uses of a
//! response body. A loopback server answers with an endless (chunked) or a
//! multi-megabyte body; the call must come back long before the request timeout,
//! with an error text of bounded length, instead of buffering the body.
#![cfg(all(feature = "http-transport", feature = "loki"))]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use loggier_core::SendOutcome;
use loggier_core::sink::http_transport::{
    HttpTransport, MAX_ERROR_BODY_BYTES, MAX_REPLY_BODY_BYTES,
};
use loggier_core::sink::loki::LokiClient;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// Generous request timeout: reading a body until it ends (or until this timeout)
/// is the defect; the fixed transport returns long before it.
const TIMEOUT: Duration = Duration::from_secs(20);

/// How the server's body is framed.
#[derive(Clone, Copy)]
enum Body {
    /// Chunked transfer encoding, never ending.
    Endless,
    /// `Content-Length: n`, all of it sent.
    Length(usize),
    /// `Content-Length` twice `n`, `n` bytes sent, then the connection is closed.
    Cut(usize),
}

/// A raw HTTP/1.1 server on 127.0.0.1 answering every request with `status_line` and
/// a body of `x`s framed as `body`. Counts the body bytes it managed to write.
async fn server(status_line: &'static str, body: Body) -> (String, Arc<AtomicU64>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let written = Arc::new(AtomicU64::new(0));
    let w = Arc::clone(&written);
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            let w = Arc::clone(&w);
            tokio::spawn(async move {
                // Read the request head (and whatever body arrived with it).
                let mut buf = vec![0u8; 64 * 1024];
                let mut seen = Vec::new();
                while !seen.windows(4).any(|x| x == b"\r\n\r\n") {
                    match sock.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => seen.extend_from_slice(&buf[..n]),
                    }
                }
                let chunk = vec![b'x'; 64 * 1024];
                match body {
                    Body::Endless => {
                        let head = format!(
                            "HTTP/1.1 {status_line}\r\ncontent-type: text/plain\r\n\
                             transfer-encoding: chunked\r\n\r\n"
                        );
                        if sock.write_all(head.as_bytes()).await.is_err() {
                            return;
                        }
                        let frame_head = format!("{:x}\r\n", chunk.len());
                        loop {
                            let ok = sock.write_all(frame_head.as_bytes()).await.is_ok()
                                && sock.write_all(&chunk).await.is_ok()
                                && sock.write_all(b"\r\n").await.is_ok();
                            if !ok {
                                return;
                            }
                            w.fetch_add(chunk.len() as u64, Ordering::Relaxed);
                        }
                    }
                    Body::Length(n) | Body::Cut(n) => {
                        let announced = if matches!(body, Body::Cut(_)) {
                            2 * n
                        } else {
                            n
                        };
                        let head = format!(
                            "HTTP/1.1 {status_line}\r\ncontent-type: text/plain\r\n\
                             content-length: {announced}\r\n\r\n"
                        );
                        if sock.write_all(head.as_bytes()).await.is_err() {
                            return;
                        }
                        let mut left = n;
                        while left > 0 {
                            let k = left.min(chunk.len());
                            if sock.write_all(&chunk[..k]).await.is_err() {
                                return;
                            }
                            w.fetch_add(k as u64, Ordering::Relaxed);
                            left -= k;
                        }
                        if matches!(body, Body::Cut(_)) {
                            let _ = sock.flush().await;
                            return;
                        }
                        // Keep the connection open until the client goes.
                        let _ = sock.read(&mut buf).await;
                    }
                }
            });
        }
    });
    (format!("http://{addr}/"), written)
}

fn transport() -> HttpTransport {
    HttpTransport::new(TIMEOUT, Default::default()).expect("transport")
}

fn reason(o: &SendOutcome) -> &str {
    match o {
        SendOutcome::Retry { reason, .. } | SendOutcome::Reject { reason } => reason,
        other => panic!("expected a failure, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn item12_endless_error_body_is_not_buffered() {
    let (url, written) = server("500 Internal Server Error", Body::Endless).await;
    let t = transport();
    let started = Instant::now();
    let outcome = t
        .post_bytes(&url, uuid::Uuid::nil(), Bytes::from_static(b"[]"), &[])
        .await;
    let took = started.elapsed();
    assert!(
        took < TIMEOUT / 4,
        "the call read the endless body until the timeout: {took:?}"
    );
    assert!(matches!(outcome, SendOutcome::Retry { .. }), "{outcome:?}");
    let r = reason(&outcome);
    assert!(r.starts_with("http 500: xxx"), "{r}");
    assert!(r.len() <= 600, "error text not capped: {} bytes", r.len());
    // The server is still writing; the client stopped reading.
    let _ = written.load(Ordering::Relaxed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn item12_multi_megabyte_error_body_is_read_only_to_the_cap() {
    let (url, _) = server("400 Bad Request", Body::Length(64 * 1024 * 1024)).await;
    let t = transport();
    let started = Instant::now();
    let reply = t
        .post_for_reply(&url, uuid::Uuid::nil(), Bytes::from_static(b"[]"), &[])
        .await
        .expect("a reply");
    assert_eq!(reply.status, 400);
    assert!(
        reply.body.len() <= MAX_ERROR_BODY_BYTES,
        "{} bytes of an error body buffered",
        reply.body.len()
    );
    assert!(started.elapsed() < TIMEOUT / 4, "{:?}", started.elapsed());
    let outcome = reply.classify();
    assert!(matches!(outcome, SendOutcome::Reject { .. }), "{outcome:?}");
    assert!(reason(&outcome).len() <= 600);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn item12_endless_success_body_is_cut_at_the_reply_cap() {
    let (url, _) = server("200 OK", Body::Endless).await;
    let t = transport();
    let started = Instant::now();
    let reply = t
        .post_for_reply(&url, uuid::Uuid::nil(), Bytes::from_static(b"[]"), &[])
        .await
        .expect("a reply");
    assert_eq!(reply.status, 200);
    assert!(
        reply.body.len() <= MAX_REPLY_BODY_BYTES,
        "{}",
        reply.body.len()
    );
    assert!(started.elapsed() < TIMEOUT / 4, "{:?}", started.elapsed());
    assert_eq!(reply.classify(), SendOutcome::Delivered);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn item12_query_answers_past_the_limit_are_errors_not_buffers() {
    let (url, _) = server("200 OK", Body::Endless).await;
    let t = transport();
    let started = Instant::now();
    let err = t
        .get_limited(&url, 256 * 1024)
        .await
        .expect_err("too large");
    assert!(err.contains("larger than 262144 bytes"), "{err}");
    assert!(started.elapsed() < TIMEOUT / 4, "{:?}", started.elapsed());

    // The Loki query client passes its limit down.
    let (url, _) = server("200 OK", Body::Length(8 * 1024 * 1024)).await;
    let loki = LokiClient::builder(url.trim_end_matches('/'))
        .timeout(TIMEOUT)
        .max_response_bytes(1024 * 1024)
        .build()
        .expect("client");
    let err = loki.labels().await.expect_err("too large");
    assert!(
        err.to_string().contains("larger than 1048576 bytes"),
        "{err}"
    );

    // An error answer with an endless body still carries its (capped) text.
    let (url, _) = server("503 Service Unavailable", Body::Endless).await;
    let loki = LokiClient::builder(url.trim_end_matches('/'))
        .timeout(TIMEOUT)
        .build()
        .expect("client");
    let started = Instant::now();
    let err = loki.ready().await.expect_err("not ready");
    assert!(started.elapsed() < TIMEOUT / 4, "{:?}", started.elapsed());
    assert!(err.to_string().len() <= 1200, "{}", err.to_string().len());
}

/// A body cut short by the server: of an error answer the bytes that arrived are
/// kept (the status is what matters); of a 2xx answer it is an error, not a short
/// body taken for the whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_cut_short_keeps_the_error_text_and_fails_a_success() {
    let (url, _) = server("503 Service Unavailable", Body::Cut(100)).await;
    let t = transport();
    let reply = t
        .post_for_reply(&url, uuid::Uuid::nil(), Bytes::from_static(b"[]"), &[])
        .await
        .expect("a reply");
    assert_eq!(reply.status, 503);
    assert_eq!(&reply.body[..], &[b'x'; 100][..]);
    assert!(matches!(reply.classify(), SendOutcome::Retry { .. }));

    let (url, _) = server("200 OK", Body::Cut(100)).await;
    let err = t
        .post_for_reply(&url, uuid::Uuid::nil(), Bytes::from_static(b"[]"), &[])
        .await
        .expect_err("a cut 2xx body is an error");
    assert!(!err.is_empty());
    let err = t.get_limited(&url, 1024).await.expect_err("cut");
    assert!(!err.is_empty());

    let (url, _) = server("404 Not Found", Body::Cut(100)).await;
    let (status, body) = t.get_limited(&url, 1024).await.expect("an answer");
    assert_eq!(status, 404);
    assert_eq!(&body[..], &[b'x'; 100][..]);
}
