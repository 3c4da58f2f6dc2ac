//! `loggier-relay`: the relay as a process.
//!
//! `cargo run -p loggier-relay` listens on `127.0.0.1:8000` and writes records to
//! `./loggier-data/loggier.ndjson`; set `LOKI_URL` to forward to Loki as well. See
//! the crate docs for every variable. SIGTERM or Ctrl-C stops accepting requests,
//! lets in-flight requests finish, then flushes the pipeline.

use std::collections::HashMap;
use std::process::ExitCode;

use loggier_core::GUARD_SHUTDOWN_TIMEOUT;
use loggier_relay::{Relay, RelayConfig, build_pipeline};

#[tokio::main]
async fn main() -> ExitCode {
    let vars: HashMap<String, String> = std::env::vars().collect();
    let config = match RelayConfig::from_lookup(|k| vars.get(k).cloned()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("loggier-relay: configuration error: {e}");
            return ExitCode::from(2);
        }
    };
    let pipeline = match build_pipeline(&vars) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("loggier-relay: configuration error: {e}");
            return ExitCode::from(2);
        }
    };
    let addr = config.addr;
    let open = config.keys.is_empty();
    let mut builder = Relay::builder(pipeline.loggier.clone())
        .config(config)
        .pipeline_config(&pipeline.config);
    if let Some(loki) = pipeline.loki.clone() {
        builder = builder.loki(loki);
    }
    let relay = builder.build();
    let listener = match tokio::net::TcpListener::bind(addr).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("loggier-relay: cannot listen on {addr}: {e}");
            return ExitCode::from(1);
        }
    };
    eprintln!(
        "loggier-relay: listening on http://{addr} (sinks: {}; {})",
        pipeline.config.sinks.join(", "),
        if open {
            "no API keys: open mode"
        } else {
            "API keys required"
        }
    );
    // With the peer address, so failed keys are limited per client address.
    let app = relay
        .router()
        .into_make_service_with_connect_info::<std::net::SocketAddr>();
    let served = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown_signal())
        .await;
    let log = pipeline.loggier.clone();
    let flushed = tokio::task::spawn_blocking(move || {
        let ok = log.flush(GUARD_SHUTDOWN_TIMEOUT);
        log.shutdown(GUARD_SHUTDOWN_TIMEOUT);
        ok
    })
    .await
    .unwrap_or(false);
    let stats = pipeline.loggier.stats();
    eprintln!(
        "loggier-relay: stopped; flushed: {flushed}, dropped: {}, pending: {}",
        stats.dropped(),
        pipeline.loggier.pending_count()
    );
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("loggier-relay: server error: {e}");
            ExitCode::from(1)
        }
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
    eprintln!("loggier-relay: shutting down, flushing the pipeline");
}
