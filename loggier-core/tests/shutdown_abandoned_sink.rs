//! A sink thread that does not get to run past the shutdown deadline (here: a sink
//! whose `send` blocks its thread, as a thread starved of CPU would look): when
//! `shutdown` returns, the records it held are counted `dropped_failed`, stats
//! balance exactly, and nothing changes (or is counted twice) when the thread
//! finally runs again. Before the fix the sink counted its leftovers itself, after
//! `shutdown` had returned with them still pending.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use loggier_core::{BoxFuture, Loggier, Payload, Record, SendOutcome, ServiceInfo, Sink};

/// Blocks its thread for `block` in the first `send`, then never completes a send.
struct Stuck {
    entered: Arc<AtomicBool>,
    woke: Arc<AtomicBool>,
    block: Duration,
    sends: Arc<AtomicU64>,
}

impl Sink for Stuck {
    fn name(&self) -> &str {
        "stuck"
    }
    fn encode(
        &mut self,
        records: &[Arc<Record>],
        _service: &ServiceInfo,
    ) -> Result<Vec<Payload>, loggier_core::Error> {
        Ok(vec![Payload::new(&b"x"[..], records.len() as u32)])
    }
    fn send<'a>(&'a mut self, _p: &'a Payload) -> BoxFuture<'a, SendOutcome> {
        if self.sends.fetch_add(1, Ordering::SeqCst) == 0 {
            self.entered.store(true, Ordering::SeqCst);
            // The whole sink thread stops here, like a thread the OS does not run.
            std::thread::sleep(self.block);
            self.woke.store(true, Ordering::SeqCst);
        }
        Box::pin(std::future::pending())
    }
    fn is_local(&self) -> bool {
        true
    }
}

#[test]
fn a_sink_thread_stalled_past_the_deadline_is_counted_at_return_and_only_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let entered = Arc::new(AtomicBool::new(false));
    let woke = Arc::new(AtomicBool::new(false));
    let sends = Arc::new(AtomicU64::new(0));
    let log = Loggier::builder()
        .data_dir(dir.path())
        .max_batch_size(1)
        .flush_interval(Duration::from_millis(10))
        .sink(Stuck {
            entered: Arc::clone(&entered),
            woke: Arc::clone(&woke),
            block: Duration::from_millis(1500),
            sends: Arc::clone(&sends),
        })
        .build()
        .expect("client");

    const N: u64 = 10;
    log.info("first");
    let until = Instant::now() + Duration::from_secs(10);
    while !entered.load(Ordering::SeqCst) && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(entered.load(Ordering::SeqCst), "the sink never sent");
    for i in 1..N {
        log.info(format!("record {i}"));
    }
    // Every record reached the sink (it holds them in memory).
    let until = Instant::now() + Duration::from_secs(10);
    while log.stats().sinks[0].received < N && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(log.stats().sinks[0].received, N, "{:?}", log.stats());

    let budget = Duration::from_millis(300);
    let started = Instant::now();
    log.shutdown(budget);
    let took = started.elapsed();
    assert!(
        !woke.load(Ordering::SeqCst),
        "the test needs the sink thread still stalled when shutdown returns (took {took:?})"
    );
    let at_return = log.stats();
    let k = &at_return.sinks[0];
    assert_eq!(k.balance(), 0, "{k:?}");
    assert_eq!(at_return.in_channel, 0, "{at_return:?}");
    assert_eq!(
        k.pending, 0,
        "records still pending when shutdown returned: {k:?}"
    );
    assert_eq!(k.written, 0, "{k:?}");
    assert_eq!(k.dropped_failed, N, "{k:?}");
    assert_eq!(at_return.enqueued, N, "{at_return:?}");
    assert!(
        k.last_error
            .as_deref()
            .is_some_and(|e| e.contains("shutdown deadline")),
        "{k:?}"
    );

    // The sink thread runs again and finds the shutdown: nothing more is counted.
    let until = Instant::now() + Duration::from_secs(10);
    while !woke.load(Ordering::SeqCst) && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(woke.load(Ordering::SeqCst), "the sink thread never woke");
    std::thread::sleep(Duration::from_millis(500));
    let later = log.stats();
    assert_eq!(
        later, at_return,
        "the stats changed after shutdown returned"
    );
    let k = &later.sinks[0];
    assert_eq!(k.written + k.dropped(), N, "counted twice or lost: {k:?}");
}
