//! Loggier core client.
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod error;
mod pipeline;
#[cfg(feature = "disk-queue")]
pub mod queue;
pub mod record;
pub mod sink;

pub use error::{ConfigError, Error, ErrorKind};
pub use pipeline::retry::{
    DEFAULT_INITIAL_BACKOFF, DEFAULT_MAX_BACKOFF, DEFAULT_MAX_RETRIES, RetryPolicy,
};
pub use record::{
    BodyContent, CapturedBody, Exception, ExceptionCause, Fields, Frame, HttpRequest, HttpResponse,
    HttpTransaction, Level, Record, ServiceInfo, Timing, TimingKind,
};
pub use sink::{BatchHint, BoxFuture, Payload, SendOutcome, Sink};
#[cfg(feature = "file")]
pub use sink::{FileSink, FileSinkBuilder};
#[cfg(feature = "http")]
pub use sink::{HttpSink, HttpSinkBuilder};
#[cfg(feature = "stdout")]
pub use sink::{StdoutFormat, StdoutSink};
