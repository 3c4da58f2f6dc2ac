#!/usr/bin/env bash
# Runs the whole Loggier benchmark suite and writes a markdown report.
#
#   scripts/bench.sh            # full run (≈ 7 min on 2 cores once built; 5 HTTP rounds)
#   scripts/bench.sh --quick    # smoke run (≈ 2 min): 1 HTTP round, shorter phases
#
# Parts (all from the loggier-bench crate, nothing to install besides Rust):
#   1. criterion `caller` — caller cost of Loggier vs tracing non_blocking JSON vs the
#      OpenTelemetry appender + BatchLogProcessor, and each disabled level;
#   2. criterion `encode` — encode throughput per wire format;
#   3. `http-bench` — axum/actix req/s and p50/p99 behind each logging layer;
#   4. `pipeline-bench` — end-to-end records/s, CPU/record, memory, outage.
# Output: target/bench-report.md (and the parts as target/bench-*.md).
# The build is done first and is not part of the time budget.
set -euo pipefail
cd "$(dirname "$0")/.."

QUICK=""
if [[ "${1:-}" == "--quick" ]]; then QUICK="--quick"; fi

TARGET_DIR="${CARGO_TARGET_DIR:-target}"
REPORT="$TARGET_DIR/bench-report.md"

echo "== build (not timed)" >&2
cargo bench -p loggier-bench --no-run >&2
cargo build --release -p loggier-bench --bins >&2
BIN="$TARGET_DIR/release"

START=$(date +%s)
if [[ -n "$QUICK" ]]; then
  CRIT=(--noplot --warm-up-time 0.5 --measurement-time 1)
else
  CRIT=(--noplot)
fi

echo "== criterion: caller" >&2
cargo bench -p loggier-bench --bench caller -- "${CRIT[@]}" >&2
echo "== criterion: encode" >&2
if [[ -n "$QUICK" ]]; then
  cargo bench -p loggier-bench --bench encode -- "${CRIT[@]}" encode_mix >&2
else
  cargo bench -p loggier-bench --bench encode -- "${CRIT[@]}" >&2
fi
"$BIN/bench-report" "$TARGET_DIR/criterion" --out "$TARGET_DIR/bench-criterion.md" >/dev/null

echo "== http" >&2
"$BIN/http-bench" $QUICK --out "$TARGET_DIR/bench-http.md" >/dev/null
echo "== pipeline" >&2
"$BIN/pipeline-bench" $QUICK --out "$TARGET_DIR/bench-pipeline.md" >/dev/null
END=$(date +%s)

CPU_MODEL=$(grep -m1 'model name' /proc/cpuinfo 2>/dev/null | cut -d: -f2 | sed 's/^ *//' || echo unknown)
{
  echo "## Loggier benchmark report"
  echo
  echo "- command: \`scripts/bench.sh $QUICK\`"
  echo "- when: $(date -u +%Y-%m-%dT%H:%M:%SZ); commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
  echo "- machine: $(nproc) cores ($CPU_MODEL), $(uname -sr), load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "- suite run time (excluding the build): $((END - START)) s"
  echo
  cat "$TARGET_DIR/bench-criterion.md" "$TARGET_DIR/bench-http.md" "$TARGET_DIR/bench-pipeline.md"
} > "$REPORT"
echo "wrote $REPORT" >&2
cat "$REPORT"
