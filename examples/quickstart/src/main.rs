//! Loggier quickstart: a realistic short run of a service, logged to the embedded file
//! sink (`./loggier-data/loggier.ndjson`, or `$LOGGIER_DATA_DIR`).
//!
//! Run it from the repository root:
//!
//! ```text
//! cargo run -p quickstart
//! ```
//!
//! Every `LOGGIER_*` variable of `loggier_core::config` applies (e.g.
//! `LOGGIER_SINKS=file,stdout LOGGIER_STDOUT_FORMAT=logfmt`).

use std::error::Error;
use std::time::Duration;

use loggier_core::context::Scope;
use loggier_core::{Config, Level, LoggierBuilder, fields, info, warning};

/// A domain error with a real `std::io::Error` as its source.
#[derive(Debug)]
struct ImportError {
    file: String,
    source: std::io::Error,
}

impl std::fmt::Display for ImportError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "cannot import price list {}", self.file)
    }
}

impl Error for ImportError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        Some(&self.source)
    }
}

fn import_prices(path: &std::path::Path) -> Result<usize, ImportError> {
    std::fs::read_to_string(path)
        .map(|text| text.lines().count())
        .map_err(|source| ImportError {
            file: path.display().to_string(),
            source,
        })
}

fn main() -> Result<(), Box<dyn Error>> {
    let mut config = Config::from_env()?;
    if config.service_name == "app" {
        config.service_name = "quickstart-shop".into();
    }
    let data_dir = config.data_dir.clone();
    let guard = loggier_core::init_with(
        LoggierBuilder::from_config(config)
            .project_name("loggier-demo")
            .version(env!("CARGO_PKG_VERSION"))
            .tags(["quickstart"]),
    )?;
    let log = guard.client().clone();

    log.update_global(fields! { "region" => "eu-west-1", "pid" => std::process::id() });
    info!(log, workers = 4, "service started");

    // Work inside a scope: every record carries the order id and request id.
    for (order, cents) in [("ORD-1001", 1999), ("ORD-1002", 45_000)] {
        let _scope = Scope::new()
            .field("order_id", order)
            .request_id(format!("req-{order}"))
            .enter();
        info!(log, amount_cents = cents, "payment authorised");
        if cents > 10_000 {
            warning!(
                log,
                amount_cents = cents,
                limit_cents = 10_000,
                "amount above review limit"
            );
        }
    }

    // A login attempt whose payload carries secrets: they leave the process masked.
    log.event(Level::Info, "user signed in")
        .field(
            "payload",
            serde_json::json!({"email": "ann@example.com", "password": "hunter2", "card": {"card_number": "4111111111111111", "cvv": "123"}}),
        )
        .field("authorization", "Bearer eyJhbGciOi.secret")
        .emit();

    // A real I/O failure with its source chain.
    let missing = std::env::temp_dir().join("loggier-quickstart-does-not-exist.csv");
    if let Err(e) = import_prices(&missing) {
        log.exception("nightly price import failed", &e);
    }

    let flushed = log.flush(Duration::from_secs(10));
    let stats = log.stats();
    let file = data_dir.join("loggier.ndjson");
    println!("flushed: {flushed}");
    println!("records written to {}", file.display());
    for s in &stats.sinks {
        println!(
            "sink {}: written {} dropped {} pending {}",
            s.name,
            s.written,
            s.dropped(),
            s.pending
        );
    }
    println!(
        "enqueued {} dropped before sinks {}",
        stats.enqueued,
        stats.dropped()
    );
    drop(guard);
    if !flushed {
        return Err("not every record was written".into());
    }
    Ok(())
}
