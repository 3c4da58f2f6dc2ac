//! Backpressure: with a stalled sink the relay answers 503 + Retry-After instead of
//! accepting records the pipeline would drop; every record answered 2xx arrives
//! once the sink moves again.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{TestRelay, http};
use loggier_core::{BoxFuture, Level, Loggier, Payload, Record, SendOutcome, ServiceInfo, Sink};
use loggier_relay::Relay;
use serde_json::{Value, json};
use tokio::sync::watch;

/// Keeps the messages it is sent, but only once the gate is open.
struct GatedSink {
    open: watch::Receiver<bool>,
    got: Arc<Mutex<Vec<String>>>,
}

impl Sink for GatedSink {
    fn name(&self) -> &str {
        "gated"
    }

    fn encode(
        &mut self,
        records: &[Arc<Record>],
        _service: &ServiceInfo,
    ) -> Result<Vec<Payload>, loggier_core::Error> {
        let text = records
            .iter()
            .map(|r| &*r.message)
            .collect::<Vec<_>>()
            .join("\n");
        Ok(vec![Payload::new(text.into_bytes(), records.len() as u32)])
    }

    fn send<'a>(&'a mut self, payload: &'a Payload) -> BoxFuture<'a, SendOutcome> {
        Box::pin(async move {
            let _ = self.open.wait_for(|o| *o).await;
            let text = String::from_utf8(payload.bytes.to_vec()).unwrap();
            self.got
                .lock()
                .unwrap()
                .extend(text.lines().map(str::to_string));
            SendOutcome::Delivered
        })
    }

    fn is_local(&self) -> bool {
        true
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_pipeline_answers_503_and_loses_nothing_it_accepted() {
    let (open_tx, open_rx) = watch::channel(false);
    let got = Arc::new(Mutex::new(Vec::new()));
    let dir = tempfile::tempdir().unwrap();
    let loggier = Loggier::builder()
        .service_name("relay")
        .data_dir(dir.path())
        .log_level(Level::Trace)
        .channel_capacity(8)
        .max_batch_size(2)
        .flush_interval(Duration::from_millis(5))
        .sink(GatedSink {
            open: open_rx,
            got: Arc::clone(&got),
        })
        .build()
        .unwrap();
    let relay = TestRelay::serve(Relay::builder(loggier).build(), dir).await;

    let mut accepted: Vec<String> = Vec::new();
    let mut refused = 0;
    for i in 0..60 {
        // Singles and batches of 3.
        let res = if i % 2 == 0 {
            http()
                .post(relay.url("/log"))
                .json(&json!({"message": format!("single-{i}")}))
                .send()
                .await
                .unwrap()
        } else {
            let batch: Vec<Value> = (0..3)
                .map(|j| json!({"message": format!("batch-{i}-{j}")}))
                .collect();
            http()
                .post(relay.url("/logs"))
                .json(&batch)
                .send()
                .await
                .unwrap()
        };
        match res.status().as_u16() {
            202 => {
                if i % 2 == 0 {
                    accepted.push(format!("single-{i}"));
                } else {
                    accepted.extend((0..3).map(|j| format!("batch-{i}-{j}")));
                }
            }
            503 => {
                refused += 1;
                assert_eq!(res.headers()["retry-after"], "1");
                let v: Value = res.json().await.unwrap();
                assert_eq!(v["error"]["code"], "pipeline_full");
                assert_eq!(v["error"]["accepted"], 0);
            }
            other => panic!("unexpected status {other}: {}", res.text().await.unwrap()),
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    assert!(refused > 0, "the stalled pipeline filled up");
    assert!(!accepted.is_empty());
    // /ready reports it.
    let ready = http().get(relay.url("/ready")).send().await.unwrap();
    assert_eq!(ready.status(), 503);

    open_tx.send(true).unwrap();
    relay.flush().await;
    let mut delivered = got.lock().unwrap().clone();
    delivered.sort();
    accepted.sort();
    assert_eq!(
        delivered, accepted,
        "every 2xx record delivered, nothing else"
    );
    let stats = relay.loggier.stats();
    assert_eq!(stats.dropped(), 0, "{stats:?}");
    assert_eq!(stats.sinks[0].dropped(), 0, "{stats:?}");
    // Room again.
    let res = http()
        .post(relay.url("/log"))
        .json(&json!({"message": "after"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 202);
}
