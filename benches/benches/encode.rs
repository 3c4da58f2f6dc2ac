//! Encode throughput per wire format, through each sink's public [`Sink::encode`]
//! (what the Loggier worker calls for every batch):
//!
//! - `ndjson`: [`FileSink`] — one Loggier JSON object per line;
//! - `logfmt`: [`StdoutSink`] with [`StdoutFormat::Logfmt`] — TSKV lines;
//! - `loki_protobuf_snappy`: [`LokiSink`] — `logproto.PushRequest`, snappy block;
//! - `otlp_protobuf`: [`OtlpSink`] (HTTP/protobuf, no compression) —
//!   `ExportLogsServiceRequest`.
//!
//! Each batch is handed over as the worker holds it, every record in an `Arc`.
//!
//! Group `encode_mix`: a batch of 100 records (the default `max_batch_size`) of the
//! realistic mix of `loggier_bench::fixtures` (10 plain : 5 context : 4 HTTP :
//! 1 exception). Group `encode_kind`: 100 records of one kind per format.
//! Criterion reports records/s (`Throughput::Elements`); `bench-report` turns that
//! into MB/s of wire bytes with each format's encoded size per record. Records are
//! already masked when the worker encodes them, so masking is not in these figures.
//!
//! Run: `cargo bench -p loggier-bench --bench encode`.

#![allow(missing_docs)]

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use loggier_bench::fixtures::{self, Kind};
use loggier_core::{
    FileSink, LokiSink, OtlpSink, Record, ServiceInfo, Sink, StdoutFormat, StdoutSink,
};

const BATCH: usize = 100;

fn service() -> ServiceInfo {
    ServiceInfo {
        service: "shop-api".into(),
        environment: "production".into(),
        project: Some("shop".into()),
        version: Some("1.4.2".into()),
        revision: None,
        host: Some("web-1".into()),
    }
}

/// The four sinks under test, by format name.
fn sinks(dir: &std::path::Path) -> Vec<(&'static str, Box<dyn Sink>)> {
    vec![
        (
            "ndjson",
            Box::new(
                FileSink::builder(dir.join("encode.ndjson"))
                    .build()
                    .expect("file sink"),
            ),
        ),
        (
            "logfmt",
            Box::new(StdoutSink::with_writer(
                StdoutFormat::Logfmt,
                Box::new(std::io::sink()),
            )),
        ),
        (
            "loki_protobuf_snappy",
            Box::new(
                LokiSink::builder("http://127.0.0.1:3100")
                    .build()
                    .expect("loki sink"),
            ),
        ),
        (
            "otlp_protobuf",
            Box::new(
                OtlpSink::builder()
                    .endpoint("http://127.0.0.1:4318")
                    .build()
                    .expect("otlp sink"),
            ),
        ),
    ]
}

fn run(
    c: &mut Criterion,
    group: &str,
    batches: &[(&'static str, Vec<Arc<Record>>)],
    dir: &std::path::Path,
) {
    let svc = service();
    let mut g = c.benchmark_group(group);
    g.throughput(Throughput::Elements(BATCH as u64));
    for (format, mut sink) in sinks(dir) {
        for (label, records) in batches {
            // Check once that the encoder accepts the batch and accounts for every record.
            let payloads = sink.encode(records, &svc).expect("encodes");
            let n: u32 = payloads.iter().map(|p| p.records).sum();
            assert_eq!(n as usize, records.len(), "{format} lost records");
            assert!(
                payloads.iter().all(|p| !p.bytes.is_empty()),
                "{format} wrote nothing"
            );
            g.bench_with_input(BenchmarkId::new(format, label), records, |b, recs| {
                b.iter(|| black_box(sink.encode(black_box(recs), &svc).expect("encodes")))
            });
        }
    }
    g.finish();
}

/// The batch as the worker hands it to a sink: each record in an `Arc`.
fn shared(records: Vec<Record>) -> Vec<Arc<Record>> {
    records.into_iter().map(Arc::new).collect()
}

fn encode(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    run(
        c,
        "encode_mix",
        &[("mix", shared(fixtures::mix(BATCH)))],
        dir.path(),
    );
    let per_kind: Vec<_> = Kind::ALL
        .iter()
        .map(|k| {
            (
                k.name(),
                shared((0..BATCH as u64).map(|i| k.record(i)).collect()),
            )
        })
        .collect();
    run(c, "encode_kind", &per_kind, dir.path());
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = encode
}
criterion_main!(benches);
