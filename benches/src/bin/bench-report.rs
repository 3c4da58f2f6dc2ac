//! Turns the criterion results of the `caller` and `encode` benches into markdown.
//!
//! ```text
//! bench-report CRITERION_DIR [--out FILE.md]     # CRITERION_DIR: usually target/criterion
//! ```
//!
//! Reads `<group>/<id>/new/{benchmark,estimates}.json` for the groups `caller`,
//! `encode_mix` and `encode_kind` and prints the median time per call or per batch.
//! For the encode groups it encodes the same 100-record batches once itself, so MB/s
//! (wire bytes, 10^6 bytes) = records/s × encoded bytes per record.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use loggier_bench::fixtures::{self, Kind};
use loggier_bench::thousands;
use loggier_core::{
    FileSink, LokiSink, OtlpSink, Record, ServiceInfo, Sink, StdoutFormat, StdoutSink,
};
use serde_json::Value;

/// `(group, function, parameter)` → median ns per iteration.
type Results = BTreeMap<(String, String, String), f64>;

fn collect(dir: &Path, out: &mut Results) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.file_name().and_then(|n| n.to_str()) == Some("new") {
            if let (Some(b), Some(est)) = (
                read_json(&p.join("benchmark.json")),
                read_json(&p.join("estimates.json")),
            ) {
                let s = |k: &str| b.get(k).and_then(Value::as_str).unwrap_or("").to_string();
                let median = est
                    .pointer("/median/point_estimate")
                    .and_then(Value::as_f64)
                    .unwrap_or(f64::NAN);
                out.insert((s("group_id"), s("function_id"), s("value_str")), median);
            }
        } else if p.is_dir() && p.file_name().and_then(|n| n.to_str()) != Some("report") {
            collect(&p, out);
        }
    }
}

fn read_json(p: &Path) -> Option<Value> {
    serde_json::from_str(&std::fs::read_to_string(p).ok()?).ok()
}

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

/// Encoded bytes of `records` in `format` (same sinks as the `encode` bench).
fn encoded_len(format: &str, records: &[Record], dir: &Path) -> Option<usize> {
    let mut sink: Box<dyn Sink> = match format {
        "ndjson" => Box::new(FileSink::builder(dir.join("size.ndjson")).build().ok()?),
        "logfmt" => Box::new(StdoutSink::with_writer(
            StdoutFormat::Logfmt,
            Box::new(std::io::sink()),
        )),
        "loki_protobuf_snappy" => {
            Box::new(LokiSink::builder("http://127.0.0.1:3100").build().ok()?)
        }
        "otlp_protobuf" => Box::new(
            OtlpSink::builder()
                .endpoint("http://127.0.0.1:4318")
                .build()
                .ok()?,
        ),
        _ => return None,
    };
    // Shared in `Arc`s, as the worker hands a batch to a sink.
    let records: Vec<std::sync::Arc<Record>> =
        records.iter().cloned().map(std::sync::Arc::new).collect();
    let payloads = sink.encode(&records, &service()).ok()?;
    Some(payloads.iter().map(|p| p.bytes.len()).sum())
}

fn caller_table(r: &Results) -> String {
    let get = |f: &str| {
        r.get(&("caller".to_string(), f.to_string(), String::new()))
            .copied()
            .unwrap_or(f64::NAN)
    };
    let l = get("loggier");
    let o = get("otel_batch");
    let t = get("tracing_json_nonblocking");
    let mut md = String::from(
        "### Caller cost: `info!` with a message and 3 fields (criterion, median)\n\n\
         | what | ns / call | Loggier ÷ this |\n|---|---:|---:|\n",
    );
    for (name, label) in [
        ("loggier", "Loggier → file sink"),
        (
            "otel_batch",
            "OpenTelemetry appender-tracing + BatchLogProcessor (counting exporter)",
        ),
        (
            "tracing_json_nonblocking",
            "tracing JSON fmt over non_blocking → file",
        ),
        ("loggier_disabled", "Loggier, level disabled"),
        ("otel_disabled", "OpenTelemetry bridge, level disabled"),
        ("tracing_disabled", "tracing, level disabled"),
    ] {
        let v = get(name);
        let ratio = if name.ends_with("disabled") {
            String::from("—")
        } else {
            format!("{:.2}", l / v)
        };
        md.push_str(&format!("| {label} | {v:.1} | {ratio} |\n"));
    }
    md.push_str(&format!(
        "\nLoggier / OpenTelemetry batch: **{:.2}×** (target ≤ 1.0); Loggier / tracing \
         non_blocking JSON: **{:.2}×** (target ≤ 0.35); disabled: **{:.2} ns** (target ≤ 1).\n\n",
        l / o,
        l / t,
        get("loggier_disabled")
    ));
    md
}

fn encode_table(r: &Results, dir: &Path) -> String {
    let mut md = String::from(
        "### Encode throughput per wire format (criterion, median, batches of 100 records)\n\n\
         | format | records | records/s | MB/s (wire) | bytes / record |\n|---|---|---:|---:|---:|\n",
    );
    let batches: Vec<(String, Vec<Record>)> =
        std::iter::once(("mix".to_string(), fixtures::mix(100)))
            .chain(Kind::ALL.iter().map(|k| {
                (
                    k.name().to_string(),
                    (0..100).map(|i| k.record(i)).collect(),
                )
            }))
            .collect();
    for format in ["ndjson", "logfmt", "loki_protobuf_snappy", "otlp_protobuf"] {
        for (label, records) in &batches {
            let group = if label == "mix" {
                "encode_mix"
            } else {
                "encode_kind"
            };
            let Some(ns) = r
                .get(&(group.to_string(), format.to_string(), label.clone()))
                .copied()
            else {
                continue;
            };
            let per_s = 100.0 / (ns * 1e-9);
            let bytes = encoded_len(format, records, dir).unwrap_or(0) as f64 / 100.0;
            md.push_str(&format!(
                "| {format} | {label} | {} | {:.1} | {:.0} |\n",
                thousands(per_s),
                per_s * bytes / 1e6,
                bytes
            ));
        }
    }
    md.push('\n');
    md
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let dir = PathBuf::from(
        args.first()
            .map(String::as_str)
            .unwrap_or("target/criterion"),
    );
    let out = args
        .iter()
        .position(|a| a == "--out")
        .and_then(|i| args.get(i + 1))
        .map(PathBuf::from);
    let mut r = Results::new();
    collect(&dir, &mut r);
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut md = String::new();
    if r.keys().any(|k| k.0 == "caller") {
        md.push_str(&caller_table(&r));
    }
    if r.keys().any(|k| k.0.starts_with("encode")) {
        md.push_str(&encode_table(&r, tmp.path()));
    }
    if md.is_empty() {
        md = format!("(no criterion results under {})\n\n", dir.display());
    }
    print!("{md}");
    if let Some(p) = out {
        std::fs::write(p, &md).expect("write report");
    }
}
