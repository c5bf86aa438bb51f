#!/usr/bin/env bash
# ureq against reqwest for a one-shot agent (docs/architecture.md): binary size, dependency
# count, and start-to-first-request time (a new process making one GET to a local HAProxy that
# answers 200 itself). Both built as the agents are (release, thin LTO, panic=abort); both with
# rustls. Writes bench/results-http-clients.md. Needs hyperfine and haproxy (scripts/deps.sh,
# bench/run.sh install them).
set -euo pipefail
cd "$(dirname "$0")/http-clients"
export PATH="$HOME/.cargo/bin:$PATH"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/../../target/http-clients}"
runs="${RUNS:-300}"
out=../results-http-clients.md

cargo build --release -q
work=$(mktemp -d)
trap 'kill "$(cat "$work/pid" 2>/dev/null)" 2>/dev/null || true; rm -rf "$work"' EXIT
port=18931
cat > "$work/h.cfg" <<CFG
global
    pidfile $work/pid
defaults
    mode http
    timeout client 5s
    timeout connect 5s
    timeout server 5s
frontend fe
    bind 127.0.0.1:$port
    http-request return status 200 content-type text/plain string ok
CFG
haproxy -D -f "$work/h.cfg"
url="http://127.0.0.1:$port/"
for b in ureq-get reqwest-get; do "$CARGO_TARGET_DIR/release/$b" "$url" >/dev/null; done

hyperfine -N -w 20 -r "$runs" --export-json "$work/h.json" \
    "$CARGO_TARGET_DIR/release/ureq-get $url" "$CARGO_TARGET_DIR/release/reqwest-get $url" >/dev/null

{
    echo "## HTTP client: ureq or reqwest"
    echo
    echo "Two one-request programs (bench/http-clients/), each with rustls, built as the agents are."
    echo "Start to first answer: a new process making one GET to a local HAProxy answering 200."
    echo
    echo "| client | binary (bytes) | crates linked | start to first answer, median (ms) |"
    echo "| --- | --- | --- | --- |"
    i=0
    for b in ureq-get reqwest-get; do
        size=$(stat -c %s "$CARGO_TARGET_DIR/release/$b")
        crates=$(cargo tree -p "$b" -e normal --prefix none | sed 's/ (\*)//' | sort -u | wc -l)
        median=$(jq -r ".results[$i].median * 1000 | . * 100 | round / 100" "$work/h.json")
        echo "| ${b%-get} | $size | $crates | $median |"
        i=$((i + 1))
    done
    echo
    echo "$runs runs each (hyperfine -N, 20 warm-up); load average $(cut -d' ' -f1-3 /proc/loadavg)."
} > "$out"
cat "$out"
