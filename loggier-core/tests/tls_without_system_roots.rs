//! Issue 9, item 14: with rustls, the HTTP client loads the system's CA store when it
//! is built. A slim container has none; network sinks must still build (and speak to
//! `http://` endpoints) there, falling back to the Mozilla roots compiled in, as the
//! OpenSSL-based client did. The store is emptied through `SSL_CERT_FILE` /
//! `SSL_CERT_DIR`, which the certificate loader honours, so this test owns its
//! process (its own file).
#![cfg(all(feature = "loki", feature = "http-ingest"))]

use loggier_core::{HttpSink, LokiSink, SendOutcome, Sink};

#[test]
fn item14_sinks_build_and_send_without_a_system_ca_store() {
    let empty = tempfile::tempdir().expect("tempdir");
    // `std::env::set_var` is unsafe in edition 2024 and the crate forbids unsafe
    // code: the test re-runs itself as a child process with the variables set.
    if std::env::var_os("LOGGIER_TLS_CHILD").is_none() {
        let exe = std::env::current_exe().expect("test binary");
        let out = std::process::Command::new(exe)
            .args([
                "--exact",
                "item14_sinks_build_and_send_without_a_system_ca_store",
                "--nocapture",
            ])
            .env("LOGGIER_TLS_CHILD", "1")
            .env("SSL_CERT_FILE", empty.path().join("none.pem"))
            .env("SSL_CERT_DIR", empty.path())
            .output()
            .expect("run child");
        assert!(
            out.status.success(),
            "child failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        // A renamed test would make the child run nothing and still succeed.
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            stdout.contains("1 passed"),
            "the child ran no test:\n{stdout}"
        );
        return;
    }
    let sink = LokiSink::builder("https://logs.example.com").build();
    assert!(sink.is_ok(), "loki sink: {:?}", sink.err());

    // And it still delivers over plain HTTP.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    std::thread::spawn(move || {
        use std::io::{Read, Write};
        if let Ok((mut s, _)) = listener.accept() {
            let mut buf = [0u8; 65536];
            let mut seen = Vec::new();
            loop {
                let n = s.read(&mut buf).unwrap_or(0);
                if n == 0 {
                    break;
                }
                seen.extend_from_slice(&buf[..n]);
                let text = String::from_utf8_lossy(&seen);
                if let Some(head_end) = text.find("\r\n\r\n") {
                    let len = text[..head_end]
                        .lines()
                        .find_map(|l| {
                            let (k, v) = l.split_once(':')?;
                            k.eq_ignore_ascii_case("content-length")
                                .then(|| v.trim().parse::<usize>().ok())?
                        })
                        .unwrap_or(0);
                    if seen.len() >= head_end + 4 + len {
                        break;
                    }
                }
            }
            let _ = s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n");
        }
    });
    let mut sink = HttpSink::builder(format!("http://{addr}/ingest"))
        .build()
        .expect("http sink without a CA store");
    let records = [std::sync::Arc::new(loggier_core::Record::new(
        loggier_core::Level::Info,
        "hi",
    ))];
    let payload = sink
        .encode(&records, &loggier_core::ServiceInfo::default())
        .expect("encode")
        .remove(0);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    assert_eq!(rt.block_on(sink.send(&payload)), SendOutcome::Delivered);
}
