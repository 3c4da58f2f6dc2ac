//! Loki push protocol messages (`logproto.PushRequest`), as prost types.
//!
//! Transcribed field by field from Loki's official schema,
//! [`pkg/push/push.proto`](https://github.com/grafana/loki/blob/main/pkg/push/push.proto)
//! (package `logproto`), and derived with `prost` — no `protoc` at build time.
//! Only the write-path messages are here. Field numbers, types and names follow the
//! schema; the gogoproto options in it only affect the Go code and not the wire.
//!
//! Why not the `loki-api` crate: its `EntryAdapter` predates structured metadata
//! (field 3), which Loggier needs for request and trace ids, and it is pinned to
//! prost < 0.14. The test suite still decodes our bytes with `loki-api` as an
//! independent check of the shared fields.
//!
//! `timestamp` is `google.protobuf.Timestamp` from `prost-types`.

/// `message PushRequest` — the body of `POST /loki/api/v1/push` (before snappy).
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct PushRequest {
    /// `repeated StreamAdapter streams = 1`.
    #[prost(message, repeated, tag = "1")]
    pub streams: Vec<StreamAdapter>,
    /// `string format = 2`: the ingestion format, `"loki"` or `"otlp"`; clients leave
    /// it empty.
    #[prost(string, tag = "2")]
    pub format: String,
}

/// `message PushResponse {}` — Loki's (empty) answer to a gRPC push.
#[derive(Clone, Copy, PartialEq, Eq, ::prost::Message)]
pub struct PushResponse {}

/// `message StreamAdapter` — one stream: a label set and its entries.
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct StreamAdapter {
    /// `string labels = 1`: the label set in Prometheus text form,
    /// e.g. `{environment="production", level="info", service="api"}`.
    #[prost(string, tag = "1")]
    pub labels: String,
    /// `repeated EntryAdapter entries = 2`, oldest first.
    #[prost(message, repeated, tag = "2")]
    pub entries: Vec<EntryAdapter>,
    /// `uint64 hash = 3`: set by Loki internally; clients send 0.
    #[prost(uint64, tag = "3")]
    pub hash: u64,
}

/// `message LabelPairAdapter` — one name/value pair of structured metadata.
#[derive(Clone, PartialEq, Eq, ::prost::Message)]
pub struct LabelPairAdapter {
    /// `string name = 1`.
    #[prost(string, tag = "1")]
    pub name: String,
    /// `string value = 2`.
    #[prost(string, tag = "2")]
    pub value: String,
}

/// `message EntryAdapter` — one log line.
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct EntryAdapter {
    /// `google.protobuf.Timestamp timestamp = 1` (UTC, nanosecond precision).
    #[prost(message, optional, tag = "1")]
    pub timestamp: Option<::prost_types::Timestamp>,
    /// `string line = 2`: the log line.
    #[prost(string, tag = "2")]
    pub line: String,
    /// `repeated LabelPairAdapter structuredMetadata = 3`: per-entry metadata that is
    /// stored beside the line and not indexed.
    #[prost(message, repeated, tag = "3")]
    pub structured_metadata: Vec<LabelPairAdapter>,
    /// `repeated LabelPairAdapter parsed = 4`: only used by Loki in query responses;
    /// clients leave it empty.
    #[prost(message, repeated, tag = "4")]
    pub parsed: Vec<LabelPairAdapter>,
}
