//! `GET /metrics`: Prometheus text exposition via the `prometheus-client` crate.
//!
//! | metric | type | meaning |
//! |---|---|---|
//! | `loggier_relay_accepted_total{endpoint}` | counter | records accepted into the pipeline |
//! | `loggier_relay_rejected_total{reason}` | counter | requests refused, by error code (`body_too_large`, `rate_limited`, `pipeline_full`, …) |
//! | `loggier_relay_duplicate_batches_total` | counter | `/api/ingest` batches skipped as already stored |
//! | `loggier_relay_dropped` | gauge | records the pipeline dropped after accepting them (all reasons, all sinks) |
//! | `loggier_relay_pending` | gauge | records accepted and not yet written (channel + sinks, memory + disk) |
//! | `loggier_relay_disk_queue_records` | gauge | records parked in the disk queue |
//! | `loggier_relay_disk_queue_bytes` | gauge | size of the disk-queue files, bytes |

use std::path::Path;

use loggier_core::Loggier;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EndpointLabel {
    endpoint: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabel {
    reason: &'static str,
}

/// The relay's metrics and their registry.
#[derive(Debug)]
pub(crate) struct Metrics {
    registry: Registry,
    accepted: Family<EndpointLabel, Counter>,
    rejected: Family<ReasonLabel, Counter>,
    duplicates: Counter,
    dropped: Gauge,
    pending: Gauge,
    disk_records: Gauge,
    disk_bytes: Gauge,
}

impl Metrics {
    pub(crate) fn new() -> Self {
        let mut registry = Registry::default();
        let accepted = Family::<EndpointLabel, Counter>::default();
        let rejected = Family::<ReasonLabel, Counter>::default();
        let duplicates = Counter::default();
        let dropped = Gauge::default();
        let pending = Gauge::default();
        let disk_records = Gauge::default();
        let disk_bytes = Gauge::default();
        registry.register(
            "loggier_relay_accepted",
            "Records accepted into the pipeline",
            accepted.clone(),
        );
        registry.register(
            "loggier_relay_rejected",
            "Requests refused, by reason",
            rejected.clone(),
        );
        registry.register(
            "loggier_relay_duplicate_batches",
            "Ingest batches skipped because their batch id was already stored",
            duplicates.clone(),
        );
        registry.register(
            "loggier_relay_dropped",
            "Records dropped by the pipeline after acceptance, all reasons",
            dropped.clone(),
        );
        registry.register(
            "loggier_relay_pending",
            "Records accepted and not yet written by every sink",
            pending.clone(),
        );
        registry.register(
            "loggier_relay_disk_queue_records",
            "Records in the disk queue",
            disk_records.clone(),
        );
        registry.register(
            "loggier_relay_disk_queue_bytes",
            "Size of the disk-queue files in bytes",
            disk_bytes.clone(),
        );
        Metrics {
            registry,
            accepted,
            rejected,
            duplicates,
            dropped,
            pending,
            disk_records,
            disk_bytes,
        }
    }

    pub(crate) fn accepted(&self, endpoint: &'static str, n: usize) {
        self.accepted
            .get_or_create(&EndpointLabel { endpoint })
            .inc_by(n as u64);
    }

    pub(crate) fn rejected(&self, reason: &'static str) {
        self.rejected.get_or_create(&ReasonLabel { reason }).inc();
    }

    pub(crate) fn duplicate(&self) {
        self.duplicates.inc();
    }

    /// Refreshes the pipeline gauges and renders the text format.
    pub(crate) fn render(&self, loggier: &Loggier, queue_file: Option<&Path>) -> String {
        let stats = loggier.stats();
        let dropped = stats.dropped_queue_full
            + stats.dropped_closed
            + stats.sinks.iter().map(|s| s.dropped()).sum::<u64>();
        let to_i64 = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        self.dropped.set(to_i64(dropped));
        self.pending.set(to_i64(loggier.pending_count()));
        self.disk_records
            .set(to_i64(stats.sinks.iter().map(|s| s.pending_disk).sum()));
        self.disk_bytes
            .set(to_i64(queue_file.map_or(0, disk_queue_bytes)));
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// Bytes of the SQLite queue file and its `-wal`/`-shm` companions (0 when absent).
fn disk_queue_bytes(file: &Path) -> u64 {
    let mut total = 0;
    for suffix in ["", "-wal", "-shm"] {
        let mut p = file.as_os_str().to_owned();
        p.push(suffix);
        if let Ok(m) = std::fs::metadata(Path::new(&p)) {
            total += m.len();
        }
    }
    total
}
