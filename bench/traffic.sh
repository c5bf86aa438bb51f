#!/usr/bin/env bash
# What the clients see (issue 13): runs tests/tests/cluster_traffic.rs, each cloud's README
# configuration on the real two-node cluster with the fake cloud's network carrying the floating
# IP and a client sending a request every 50 ms: every cloud at the harness's tuning, then
# DigitalOcean once per tuning a user can choose: corosync's token (1000 ms, the harness's
# default, and 3000 ms, corosync's own) and the monitor interval (the README's 10 s, and 5 s).
# Each run reports, per event, the client-visible outage (last answer before -> first answer
# after), the failed requests, the balancer before and after, and the crash's breakdown; this
# script gathers them into bench/results-traffic.md.
# Usage: bash bench/traffic.sh. Run as root on Debian 12 with the packages of scripts/deps.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# shellcheck source=bench/lib.sh
. bench/lib.sh
bench_require_root "it makes network namespaces and runs a cluster"
out=bench/results-traffic.md

bench_build # the agents as they ship, in target/release, where the release test looks for them
work=$(mktemp -d /tmp/cloudha-traffic-bench-XXXXXX)
trap 'rm -rf "$work"' EXIT

run() { # NAME TOKEN_MS MONITOR_INTERVAL [TEST_NAME_FILTER]
    echo "== $1: corosync token $2 ms, monitor interval $3 ${4:-(every cloud)}" >&2
    CLOUDHA_COROSYNC_TOKEN=$2 CLOUDHA_MONITOR_INTERVAL=$3 CLOUDHA_TRAFFIC_REPORT="$work/$1.md" \
        cargo test -q --release --locked -p cloudha-tests --test cluster_traffic -- ${4:+"$4"} \
        >"$work/$1.log" 2>&1 || { tail -50 "$work/$1.log" >&2; exit 1; }
}
run clouds 1000 10s
run token3000 3000 10s digitalocean_
run monitor5 1000 5s digitalocean_

{
    echo "## What the clients see (bench/traffic.sh)"
    echo
    echo "Each cloud's README configuration on the real two-node cluster (tests/tests/cluster_traffic.rs):"
    echo "the fake cloud's network routes the floating IP to the server the fake API names, switched when"
    echo "the fake's action completes (DigitalOcean: a stateless rewrite to the holder's anchor address; the others: a route"
    echo "to the IP itself, on the holder's lo; Exoscale spreads connections over every holder), two app"
    echo "servers sit behind the balancers, and a client opens a new connection to the floating IP every"
    echo "50 ms (1 s timeout). Outage: from the last answer before the event's first failed request to the"
    echo "first answer after its last one (50 ms resolution). One run per cloud at the harness's tuning, then"
    echo "DigitalOcean once per other tuning; load average at the start: $(cut -d' ' -f1-3 /proc/loadavg)."
    for r in clouds token3000 monitor5; do
        echo
        cat "$work/$r.md"
    done
    echo
    echo "Detection is corosync's (token, then consensus) and the scheduler's; the agent's share is the"
    echo "'floatip until its first request that moves the IP' and the fake's action time. HAProxy killed waits for the next"
    echo "monitor of lb (up to one interval), then a restart on the same node."
} > "$out"
echo "wrote $out"
