//! Loggier core client.
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod error;
pub mod record;
pub mod sink;

pub use error::{ConfigError, Error, ErrorKind};
pub use record::{
    BodyContent, CapturedBody, Exception, ExceptionCause, Fields, Frame, HttpRequest, HttpResponse,
    HttpTransaction, Level, Record, ServiceInfo, Timing, TimingKind,
};
pub use sink::{BatchHint, BoxFuture, Payload, SendOutcome, Sink};
#[cfg(feature = "file")]
pub use sink::{FileSink, FileSinkBuilder};
#[cfg(feature = "loki")]
pub use sink::{LokiClient, LokiSink, LokiSinkBuilder};
#[cfg(feature = "stdout")]
pub use sink::{StdoutFormat, StdoutSink};
#[cfg(feature = "vector")]
pub use sink::{VectorSink, VectorSinkBuilder};
