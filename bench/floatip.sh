#!/usr/bin/env bash
# floatip against the fake cloud (the standalone `fakecloud` program on loopback), whole
# process: median wall time (hyperfine) of monitor, of start with the assign action taking 0 s
# and 2 s (the agent's own overhead = start time − action time), the API requests one start
# spends (from the fake's record), and peak RSS (GNU time). Writes bench/results-floatip.md.
#   bash bench/floatip.sh [RUNS]        (RUNS: hyperfine runs for monitor, default 300)
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
runs=${1:-300}
out=bench/results-floatip.md
ip=203.0.113.10

# shellcheck source=bench/lib.sh
. bench/lib.sh
bench_require_root "it mounts a tmpfs for HA_RSCTMP"
bench_tools curl

target=${CARGO_TARGET_DIR:-target}
bench_build
cargo build --release --locked -q -p cloudha-tests --bin fakecloud
agent=$built/floatip
fake=$(realpath "$target/release/fakecloud")

work=$(mktemp -d)
state=$work/rsctmp
mkdir -p "$state"
fake_pid=
cleanup() {
    if [ -n "$fake_pid" ]; then kill "$fake_pid" 2>/dev/null || true; fi
    umount "$state" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
# HA_RSCTMP is /run/resource-agents, a tmpfs on a real node: the same here, whatever /tmp is.
mount -t tmpfs -o size=4m,mode=0750 cloudha-bench "$state"

# A token nobody uses, kept out of every argv (a file for the fake, the environment for the agent).
token="dop_v1_bench_$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')"
printf '%s\n' "$token" >"$work/token"
chmod 600 "$work/token"
# The benchmark sends far more requests than a real token's 250 a minute allows.
"$fake" --listen 127.0.0.1:0 --token-file "$work/token" --ip "$ip=102" --droplet 101 --droplet 102 \
    --rate-limit 10000000/100000000 --ready-file "$work/ready" >/dev/null 2>&1 &
fake_pid=$!
for _ in $(seq 100); do [ -s "$work/ready" ] && break; sleep 0.05; done
[ -s "$work/ready" ] || { echo "floatip.sh: fakecloud did not start" >&2; exit 1; }
api=$(jq -r '.api[0]' "$work/ready")
md=$(jq -r '.metadata["101"][0]' "$work/ready")

vars=(OCF_ROOT=/usr/lib/ocf OCF_RESOURCE_INSTANCE=bench OCF_RESOURCE_TYPE=floatip
      HA_RSCTMP="$state" OCF_RESKEY_CRM_meta_timeout=20000
      OCF_RESKEY_ip="$ip" OCF_RESKEY_api_token="$token" OCF_RESKEY_api_url="$api"
      OCF_RESKEY_metadata_url="$md" PATH="$PATH")
run() { env -i "${vars[@]}" "$@"; }
admin() { curl -sf -o /dev/null -X POST -d "$2" "$api/_fake/$1"; }
# Each timed start must move the address: hand it back to droplet 102 first (no action).
printf '{"ip":"%s","holder":102}' "$ip" >"$work/give-back.json"
give_back="curl -sf -o /dev/null -X POST -d @$work/give-back.json $api/_fake/holder"
bench() { # name runs [hyperfine options...] command
    local name=$1 n=$2; shift 2
    run hyperfine -N --warmup 3 --runs "$n" --export-json "$work/$name.json" "$@" >/dev/null 2>&1
}
# Variables for the timed process go to hyperfine's environment: an `env` in the timed command
# would add a process (about as long as the agent itself) to every run.
bench_recurring() { # name runs command
    run env OCF_RESKEY_CRM_meta_interval=10000 hyperfine -N --warmup 20 --runs "$2" \
        --export-json "$work/$1.json" "$3" >/dev/null 2>&1
}
median_ms() { jq -r '.results[0].median * 1000' "$work/$1.json"; }
api_requests() { curl -sf "$api/_fake/state" | jq -r '.api_requests'; }
requests_per_start() {
    local before after
    eval "$give_back"
    before=$(api_requests)
    run "$agent" start >/dev/null 2>&1 || { echo "floatip.sh: start failed" >&2; exit 1; }
    after=$(api_requests)
    echo $((after - before))
}
rss_kib() { # peak RSS over 5 runs of one command
    local max=0 r
    for _ in 1 2 3 4 5; do
        r=$(run /usr/bin/time -f %M "$@" 2>&1 >/dev/null | tail -1)
        [ "$r" -gt "$max" ] && max=$r
    done
    echo "$max"
}

load=$(cut -d' ' -f1-3 /proc/loadavg)
# monitor: a started instance, a recurring monitor (interval 10 s), metadata only.
run "$agent" start >/dev/null 2>&1
run env OCF_RESKEY_CRM_meta_interval=10000 "$agent" monitor >/dev/null 2>&1 ||
    { echo "floatip.sh: monitor after start failed" >&2; exit 1; }
api_before=$(api_requests)
bench meta "$runs" "$agent meta-data"
bench_recurring monitor "$runs" "$agent monitor"
api_after=$(api_requests)
monitor_api=$((api_after - api_before))
# For scale: the tutorial agent's monitor is two curls to the metadata service.
bench curls "$runs" "sh -c 'curl -s $md/floating_ip/ipv4/active >/dev/null; curl -s $md/floating_ip/ipv4/ip_address >/dev/null'"
rss_monitor=$(rss_kib env OCF_RESKEY_CRM_meta_interval=10000 "$agent" monitor)
rss_meta=$(rss_kib "$agent" meta-data)

admin config '{"action_time_ms":0}'
bench start0 100 --prepare "$give_back" "$agent start"
req0=$(requests_per_start)
rss_start=$(for _ in 1 2 3 4 5; do eval "$give_back"; run /usr/bin/time -f %M "$agent" start 2>&1 >/dev/null | tail -1; done | sort -n | tail -1)

admin config '{"action_time_ms":2000}'
bench start2 10 --prepare "$give_back" "$agent start"
req2=$(requests_per_start)
rss_start2=$(eval "$give_back"; run /usr/bin/time -f %M "$agent" start 2>&1 >/dev/null | tail -1)
rss_stop=$(rss_kib "$agent" stop)

mon=$(median_ms monitor)
meta=$(median_ms meta)
curls=$(median_ms curls)
s0=$(median_ms start0)
s2=$(median_ms start2)
mib() { awk -v k="$1" 'BEGIN { printf "%.1f MiB", k / 1024 }'; }
fmt() { awk -v v="$1" 'BEGIN { printf "%.2f ms", v }'; }
over2=$(awk -v s="$s2" 'BEGIN { printf "%.1f ms", s - 2000 }')
{
    echo "## floatip against the fake cloud"
    echo
    echo "$(date -u +%Y-%m-%d), $(nproc) cores, kernel $(uname -r), load average at the start $load." \
        "Release build; whole process;" \
        "the \`fakecloud\` program on loopback (plain HTTP, so no TLS in these numbers); HA_RSCTMP on a tmpfs;" \
        "hyperfine -N medians (monitor: $runs runs; start with a 0 s action: 100 runs; with a 2 s action: 10 runs);" \
        "each timed start moves the address from another droplet (one assign action)." \
        "Peak RSS: the largest of 5 runs (GNU time %M). Command: \`bash bench/floatip.sh\`."
    echo
    echo "| measure | result | target |"
    echo "| --- | --- | --- |"
    echo "| monitor (recurring, address here) | $(fmt "$mon") | ≤ 1.5 ms |"
    echo "| API requests spent by those $((runs + 20)) monitors | $monitor_api | 0 |"
    echo "| for scale: meta-data (the process alone, no request) | $(fmt "$meta") | |"
    echo "| for scale: the tutorial agent's monitor, two curls | $(fmt "$curls") | |"
    echo "| start, action 0 s | $(fmt "$s0") (= the agent's overhead) | ≤ 20 ms |"
    echo "| start, action 2 s | $(fmt "$s2") (overhead $over2) | ≤ 20 ms overhead |"
    echo "| API requests per start, action 0 s | $req0 | |"
    echo "| API requests per start, action 2 s | $req2 | |"
    echo "| peak RSS: meta-data / monitor / start / stop | $(mib "$rss_meta") / $(mib "$rss_monitor") / $(mib "$(( rss_start > rss_start2 ? rss_start : rss_start2 ))") / $(mib "$rss_stop") | ≤ 8 MiB |"
} >"$out"
cat "$out"
