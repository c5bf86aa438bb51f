#!/usr/bin/env bash
# Run every benchmark under bench/ (as root: they make network namespaces) and assemble
# BENCHMARKS.md from the sections they write (bench/results-*.md).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
for b in exec-cost anchorip floatip floatip-providers haproxy failover traffic fence bgpip http-clients; do
    if [ -f "bench/$b.sh" ]; then
        echo "== bench/$b.sh"
        bash "bench/$b.sh"
    fi
done
bash bench/assemble.sh
