//! Loggier relay: the seeds' HTTP log API as a service on the Loggier pipeline.
//!
//! Browsers and apps `POST /log` (one record) or `POST /logs` (a batch), Loggier
//! clients ship their batches to `POST /api/ingest` with
//! `loggier_core::HttpSink`, and the Loki API of seeds/003 lives under
//! `/api/v1/loki/`. Records go through the normal pipeline — masking, batching,
//! retries, disk queue, sinks — and from `/log` they reach Loki with labels
//! `service`, `component`, `level` and structured metadata `msg_id`, `version`,
//! `revision_id`, `request_id`; records from `/api/ingest` carry the same where the
//! sender has them (its `revision` as `revision_id`, the `route` of an HTTP
//! transaction as `route`) and keep their exception as a top-level `exception`.
//!
//! ```
//! use loggier_relay::{Relay, RelayConfig};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let dir = std::env::temp_dir().join("loggier-relay-doc");
//! let loggier = loggier_core::Loggier::builder()
//!     .service_name("frontend-logs")
//!     .data_dir(&dir) // file sink: <dir>/loggier.ndjson
//!     .build()?;
//! let relay = Relay::builder(loggier.clone())
//!     .config(RelayConfig::default()) // open mode, 1 MiB bodies, 100 req/s
//!     .build();
//! // Mount it in an existing service, or serve `relay.router()` on its own.
//! let app: axum::Router = axum::Router::new().nest("/logging", relay.router());
//! # drop(app);
//! # loggier.shutdown(std::time::Duration::from_secs(1));
//! # Ok(()) }
//! ```
//!
//! # Endpoints
//! See [`Relay::router`]. Every refusal is JSON, e.g.
//! `{"error":{"code":"unknown_level","message":"unknown variant `loud`, expected one of …","path":"level"}}`
//! ([`ApiError`]): 400 for malformed JSON, wrong types, unknown fields or levels and
//! the depth/length/count limits, 401/403 for keys, 413 for bodies over the limit
//! (also after gzip decompression), 415 for media types and encodings, 429 with
//! `Retry-After` per key (`rate_limited`) and per client address after too many
//! invalid keys (`auth_rate_limited`), 503 with `Retry-After` when the pipeline is
//! full (`pipeline_full`) or, in durable mode, when the disk commit could not be
//! confirmed (`not_persisted`).
//!
//! # Delivery
//! A 2xx answer means every record of the request is in the pipeline's channel
//! ([`Loggier::try_log`](loggier_core::Loggier::try_log)); from there the pipeline's
//! guarantees hold (counted drops, retries, disk queue). With
//! `LOGGIER_DELIVERY_MODE=durable` a 2xx also means on disk: the relay awaits
//! [`Loggier::persist_async`](loggier_core::Loggier::persist_async) — every record
//! of the request committed to the disk queue of each network sink and written by
//! each local sink — and answers 503 `not_persisted` when that fails or takes longer
//! than [`RelayConfig::persist_timeout`] (those records may still be stored: a
//! client that retries gets at-least-once). A 503 `pipeline_full` means nothing, or
//! only the leading `accepted` records of a batch, was taken. A retried
//! `/api/ingest` batch (same `X-Loggier-Batch-Id`) is stored once: the relay
//! remembers the last [`RelayConfig::dedup_window`] batch ids and how many records of
//! each it accepted (a batch answered `not_persisted` is forgotten, so its retry is
//! stored again).
//!
//! # Keys
//! `Authorization: Bearer <key>` or `X-API-Key: <key>`, compared in constant time
//! (`subtle`). Ingest and query keys are separate scopes; an ingest key may be limited
//! to some services. Without keys the relay runs open, which it refuses on a
//! non-loopback address unless `LOGGIER_RELAY_ALLOW_ANONYMOUS=true`. Invalid keys
//! use a per-address budget; an address that spends it is locked out (429) until it
//! refills, whatever key it sends — serve the router with
//! `into_make_service_with_connect_info::<SocketAddr>()` so the relay sees client
//! addresses (details in [`Relay::router`]).
//!
//! # Configuration
//! [`config`] lists the relay's variables; [`build_pipeline`] the pipeline's.

pub mod auth;
pub mod body;
pub mod config;
pub mod error;
pub mod loki_api;
mod metrics;
pub mod model;
pub mod pipeline;
mod relay;

pub use auth::{ApiKey, KeySet, Scope};
pub use config::{Limits, RELAY_ENV, RelayConfig};
pub use error::ApiError;
pub use pipeline::{LABEL_FIELDS, METADATA_FIELDS, Pipeline, build_pipeline, relay_loki_sink};
pub use relay::{BATCH_ID_HEADER, REQUEST_ID_HEADER, Relay, RelayBuilder};
