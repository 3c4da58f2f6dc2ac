//! `stats()` taken while records move between memory, the disk queue and the
//! receiver: every snapshot balances per sink (`SinkStats::balance() == 0`), not
//! only once the client is idle.
#![cfg(all(feature = "http-ingest", feature = "disk-queue"))]

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use loggier_core::DeliveryMode;
use support::{
    ClientOpts, Mode, Receiver, assert_conservation, client, log_ids, missing_and_duplicates,
    wait_stats,
};

const WAIT: Duration = Duration::from_secs(20);

/// Logs in phases that exercise every move (delivered from memory, parked on
/// disk after failures, refused from memory and from disk, replayed and acked
/// from disk) while another thread checks every snapshot it can take.
fn every_snapshot_balances(mode: DeliveryMode) {
    let rx = Receiver::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let opts = ClientOpts {
        mode,
        max_batch_size: 5,
        ..ClientOpts::default()
    };
    let log = client(&rx.url(), dir.path(), &opts);

    let stop = Arc::new(AtomicBool::new(false));
    let seen = Arc::new(AtomicU64::new(0));
    let reader = {
        let (log, stop, seen) = (log.clone(), Arc::clone(&stop), Arc::clone(&seen));
        std::thread::spawn(move || {
            let mut unbalanced = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let s = log.stats();
                for k in &s.sinks {
                    if k.balance() != 0 && unbalanced.len() < 5 {
                        unbalanced.push(format!("balance {}: {k:?}", k.balance()));
                    }
                }
                seen.fetch_add(1, Ordering::Relaxed);
            }
            unbalanced
        })
    };

    let mut next = 0u64;
    let mut phase = |mode: Mode, n: u64| {
        rx.set_mode(mode);
        log_ids(&log, next..next + n);
        next += n;
        // Let the sink work through it (retries, parking) before the next phase.
        std::thread::sleep(Duration::from_millis(150));
    };
    for _ in 0..3 {
        phase(Mode::Accept, 200);
        phase(Mode::Status(503), 100);
        phase(Mode::Status(400), 50);
        phase(Mode::Accept, 200);
    }
    rx.set_mode(Mode::Accept);
    // (`flush` would answer `false`: records were refused since the last one.)
    let s = wait_stats(&log, WAIT, |s| s.in_channel == 0 && s.sinks[0].pending == 0);
    assert_eq!(s.sinks[0].pending, 0, "not settled: {:?}", s.sinks[0]);
    stop.store(true, Ordering::Relaxed);
    let unbalanced = reader.join().expect("reader thread");
    let snapshots = seen.load(Ordering::Relaxed);
    assert!(
        unbalanced.is_empty(),
        "{snapshots} snapshots; unbalanced: {unbalanced:#?}"
    );

    // The phases did what they were meant to: records went every way.
    let s = log.stats();
    let k = &s.sinks[0];
    assert!(k.written > 0 && k.dropped_rejected > 0, "{k:?}");
    assert!(k.cached > 0, "nothing went through the disk queue: {k:?}");
    assert_eq!(k.pending, 0, "{k:?}");
    assert_conservation(&s);
    // What was not refused arrived.
    let ids = rx.accepted_ids();
    let (missing, _) = missing_and_duplicates(&ids, next);
    assert_eq!(missing.len() as u64, k.dropped_rejected, "{k:?}");
    log.shutdown(Duration::from_secs(5));
}

#[test]
fn every_snapshot_balances_in_offline_cache_mode() {
    every_snapshot_balances(DeliveryMode::OfflineCache);
}

#[test]
fn every_snapshot_balances_in_durable_mode() {
    every_snapshot_balances(DeliveryMode::Durable);
}
