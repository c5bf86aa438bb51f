#!/usr/bin/env bash
# A soak with faults (issue 13): tests/tests/cluster_soak.rs for --minutes N (default 10) on the
# agents as they ship: the README's DigitalOcean configuration on the real two-node cluster,
# client traffic through the fake cloud's network all along, random API 5xx and 429 bursts,
# metadata lag and outages, HAProxy killed and reloaded, a crash of the active node every 3
# minutes (then its power back). Writes bench/results-soak.md: failovers no crash caused, bans,
# failed requests outside the failover windows, API requests per hour, the agents' peak RSS.
# Usage: bash bench/soak.sh [--minutes N] [--seed S]. Run as root on Debian 12 with the packages
# of scripts/deps.sh. Not part of bench/run.sh (it is long).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# shellcheck source=bench/lib.sh
. bench/lib.sh
bench_require_root "it makes network namespaces and runs a cluster"
minutes=10
seed=
while [ $# -gt 0 ]; do
    case $1 in
        --minutes) minutes=$2; shift 2 ;;
        --seed) seed=$2; shift 2 ;;
        *) echo "usage: bench/soak.sh [--minutes N] [--seed S]" >&2; exit 2 ;;
    esac
done
out=bench/results-soak.md
bench_build # the agents as they ship, in target/release, where the release test looks for them
work=$(mktemp -d /tmp/cloudha-soak-bench-XXXXXX)
trap 'rm -rf "$work"' EXIT
# The test's whole output (the cluster's diagnostics when it fails) outlives the run.
log=/tmp/cloudha-soak-$(date +%Y%m%d-%H%M%S).log
load=$(cut -d' ' -f1-3 /proc/loadavg)
rc=0
CLOUDHA_SOAK_MINUTES=$minutes CLOUDHA_SOAK_SEED=$seed CLOUDHA_SOAK_REPORT="$work/report.md" \
    cargo test -q --release --locked -p cloudha-tests --test cluster_soak -- --nocapture \
    > "$log" 2>&1 || rc=$?
echo "the test's output: $log" >&2
[ -s "$work/report.md" ] || { tail -60 "$log" >&2; exit 1; }
{
    echo "## A soak with faults (bench/soak.sh --minutes $minutes)"
    echo
    echo "The README's DigitalOcean configuration on the real two-node cluster, release agents, a client"
    echo "asking the floating IP every 50 ms all along (tests/tests/cluster_soak.rs). Load average at the"
    echo "start: $load. The targets held: $([ "$rc" = 0 ] && echo yes || echo "NO (the test failed: see the table)")."
    echo
    cat "$work/report.md"
} > "$out"
echo "wrote $out"
exit "$rc"
