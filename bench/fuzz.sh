#!/usr/bin/env bash
# The property tests of every parser that takes outside input (environment and flags, parameter
# values, URLs, state file names and records, token files, each cloud's API JSON, HAProxy's CLI
# answers), run far longer than CI runs them: PROPTEST_CASES cases each (CI: proptest's 256).
# A failure prints its minimal input and proptest stores its seed under proptest-regressions/,
# which CI then replays first. Writes nothing else.
#   bash bench/fuzz.sh [CASES]            (default 20000)
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
export PROPTEST_CASES=${1:-20000}
start=$(date +%s)
# Unit tests of every crate (the agents' are in their binaries) and common's fuzz target;
# the ordinary unit tests among them take a second.
# Every result line, and each failure's minimal input (the lines after it).
cargo test --release --locked --no-fail-fast --workspace --lib --bins --test fuzz 2>&1 |
    awk '/^test result|FAILED/ {print} /minimal failing input/ {n = 12} n > 0 {print; n--}' || true
echo "fuzz: $PROPTEST_CASES cases per property, $(( $(date +%s) - start )) s"
