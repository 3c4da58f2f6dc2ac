//! A real [`Sink`] that keeps what it was sent, and [`Records`] to read it back.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use loggier_core::{BoxFuture, Loggier, Payload, Record, SendOutcome, ServiceInfo, Sink};
use serde_json::Value;

#[derive(Default)]
struct Store {
    /// Every NDJSON line the sink was sent, in order.
    lines: Vec<String>,
}

/// Encodes batches as NDJSON (the Loggier JSON format, like the file sink) and, on
/// `send`, keeps the bytes it was sent.
pub struct CollectingSink {
    store: Arc<Mutex<Store>>,
}

impl Sink for CollectingSink {
    fn name(&self) -> &str {
        "collect"
    }

    fn encode(
        &mut self,
        records: &[Arc<Record>],
        service: &ServiceInfo,
    ) -> Result<Vec<Payload>, loggier_core::Error> {
        let mut out = Vec::new();
        for r in records {
            loggier_core::record::encode_json_line(r, service, &mut out).map_err(|e| {
                loggier_core::Error::with_source(loggier_core::ErrorKind::Encode, "encode", e)
            })?;
        }
        let n = u32::try_from(records.len()).unwrap_or(u32::MAX);
        Ok(vec![Payload::new(out, n)])
    }

    fn send<'a>(&'a mut self, payload: &'a Payload) -> BoxFuture<'a, SendOutcome> {
        let text = String::from_utf8_lossy(&payload.bytes).into_owned();
        let mut store = self.store.lock().expect("store lock");
        store
            .lines
            .extend(text.lines().filter(|l| !l.is_empty()).map(str::to_string));
        Box::pin(async { SendOutcome::Delivered })
    }

    fn is_local(&self) -> bool {
        true
    }
}

/// Reads back what a [`CollectingSink`] received, as parsed JSON records.
#[derive(Clone)]
pub struct Records {
    loggier: Loggier,
    store: Arc<Mutex<Store>>,
}

/// A client logging only into a [`CollectingSink`] (flush interval 20 ms), and the
/// [`Records`] reading it back.
pub fn test_client(service: &str) -> (Loggier, Records) {
    let store = Arc::new(Mutex::new(Store::default()));
    let loggier = Loggier::builder()
        .service_name(service)
        .environment("test")
        .flush_interval(Duration::from_millis(20))
        .enable_caching(false)
        .log_level(loggier_core::Level::Debug)
        .sink(CollectingSink {
            store: Arc::clone(&store),
        })
        .build()
        .expect("test client builds");
    let records = Records {
        loggier: loggier.clone(),
        store,
    };
    (loggier, records)
}

/// How long [`Records::wait_for`] waits.
pub const WAIT: Duration = Duration::from_secs(10);

impl Records {
    /// Every record received so far, after flushing the client.
    pub async fn all(&self) -> Vec<Value> {
        let _ = self.loggier.flush_async(Duration::from_secs(5)).await;
        let store = self.store.lock().expect("store lock");
        store
            .lines
            .iter()
            .map(|l| serde_json::from_str(l).expect("sink got valid JSON"))
            .collect()
    }

    /// Every byte the sink was sent, as text (for "the secret never appears" checks).
    pub async fn raw_text(&self) -> String {
        let _ = self.loggier.flush_async(Duration::from_secs(5)).await;
        self.store.lock().expect("store lock").lines.join("\n")
    }

    /// Waits (up to [`WAIT`]) for a record matching `pred`; panics naming `what` and
    /// listing the records seen when none arrives.
    pub async fn wait_for(&self, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + WAIT;
        loop {
            let all = self.all().await;
            if let Some(r) = all.iter().find(|r| pred(r)) {
                return r.clone();
            }
            if Instant::now() > deadline {
                panic!(
                    "no record for {what} within {WAIT:?}; got:\n{}",
                    all.iter()
                        .map(Value::to_string)
                        .collect::<Vec<_>>()
                        .join("\n")
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits for the transaction record (logger `http`) of the request with `id`.
    pub async fn transaction(&self, id: &str) -> Value {
        self.wait_for(&format!("transaction {id}"), |r| {
            is_transaction(r) && request_id(r) == Some(id)
        })
        .await
    }

    /// Transaction records of the request with `id` received so far (after a flush).
    pub async fn transactions_now(&self, id: &str) -> Vec<Value> {
        self.all()
            .await
            .into_iter()
            .filter(|r| is_transaction(r) && request_id(r) == Some(id))
            .collect()
    }
}

/// `true` for transaction records (logger `http`).
pub fn is_transaction(r: &Value) -> bool {
    r["logger"] == "http"
}

/// The record's `context.request_id`.
pub fn request_id(r: &Value) -> Option<&str> {
    r["context"]["request_id"].as_str()
}
