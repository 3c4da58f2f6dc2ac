//! The pipeline between the caller and the sinks (worker thread, batching, retries).

pub(crate) mod retry;
