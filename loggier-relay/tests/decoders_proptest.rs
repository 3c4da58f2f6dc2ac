//! Property test over the request decoders: arbitrary bytes and arbitrary JSON built
//! from the fields the decoders know never panic, and every error carries a code and
//! a message.
#![allow(clippy::unwrap_used)]

use loggier_relay::body::{MediaType, check_text, gunzip_bounded};
use loggier_relay::model::{
    IngestRecord, LogEntry, LokiPushBody, loki_json_records, loki_protobuf_records, parse_json,
    parse_label_text, parse_ndjson,
};
use proptest::prelude::*;
use serde_json::{Map, Value};

const KEYS: &[&str] = &[
    "message",
    "error",
    "msg_id",
    "service",
    "version",
    "repository",
    "revision_id",
    "component",
    "data",
    "stack",
    "caller",
    "level",
    "func",
    "line",
    "source",
    "timestamp",
    "context",
    "request_id",
    "streams",
    "stream",
    "values",
    "tags",
    "exception",
    "timing",
];

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        prop_oneof![
            Just("info".to_string()),
            Just("ERROR".to_string()),
            Just("2026-12-01T10:00:00Z".to_string()),
            Just("1796119200000000000".to_string()),
            ".{0,12}",
        ]
        .prop_map(Value::String),
    ];
    leaf.prop_recursive(5, 64, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::vec((prop::sample::select(KEYS), inner), 0..6).prop_map(|kv| {
                let mut m = Map::new();
                for (k, v) in kv {
                    m.insert(k.to_string(), v);
                }
                Value::Object(m)
            }),
        ]
    })
}

fn exercise(bytes: &[u8]) {
    let _ = check_text(bytes, 16);
    if let Ok(e) = parse_json::<LogEntry>(bytes) {
        let _ = e.into_record("rid");
    } else if let Err(e) = parse_json::<LogEntry>(bytes) {
        assert!(!e.code.is_empty() && !e.message.is_empty());
    }
    if let Ok(v) = parse_ndjson::<LogEntry>(bytes, 50) {
        for e in v {
            let _ = e.into_record("rid");
        }
    }
    if let Ok(v) = parse_json::<Vec<IngestRecord>>(bytes) {
        for r in v {
            let _ = r.into_record();
        }
    }
    if let Ok(p) = parse_json::<LokiPushBody>(bytes) {
        let _ = loki_json_records(p);
    }
    let _ = loki_protobuf_records(bytes, 1 << 16);
    let _ = gunzip_bounded(bytes, 1 << 16);
    if let Ok(s) = std::str::from_utf8(bytes) {
        let _ = parse_label_text(s);
        let _ = MediaType::parse(s);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        exercise(&bytes);
    }

    #[test]
    fn arbitrary_json_never_panics(v in json_value()) {
        let text = v.to_string();
        exercise(text.as_bytes());
        // Also as one NDJSON line among others, and wrapped as a batch.
        exercise(format!("{text}\n{text}").as_bytes());
        exercise(format!("[{text}]").as_bytes());
        exercise(format!("{{\"streams\":[{{\"stream\":{{}},\"values\":[{text}]}}]}}").as_bytes());
    }

    #[test]
    fn snappy_framed_garbage_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        let framed = snap::raw::Encoder::new().compress_vec(&bytes).unwrap();
        let _ = loki_protobuf_records(&framed, 1 << 16);
    }
}
